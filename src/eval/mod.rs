//! The evaluation of the seeds' claims on a real model (`infogravity eval`, docs/EVALUATION.md).
//! [`metrics`] holds the statistics; [`qa`] the closed-book QA run that tests the void score.

pub mod metrics;
pub mod qa;
pub mod report;

//! One module per command: its flags (`Args`) and what it does (`exec`).

pub mod bench;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod landscape;
pub mod mass;
pub mod prior;
pub mod scan;
pub mod sensitivity;

//! Line charts as self-contained SVG (the evaluation's plots; no plotting dependency).

use std::fmt::Write;

/// A chart's labels and axes.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (x must be > 0).
    pub log_x: bool,
    /// Curves whose name contains this are drawn thicker ("" = none).
    pub bold: &'a str,
}

const COLORS: [&str; 11] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

impl Chart<'_> {
    /// `curves`: (name, points); `marks`: vertical dashed lines at x with a label. Non-finite
    /// points are skipped. The y axis runs from min(0, lowest y) to the highest y.
    pub fn svg(&self, curves: &[(String, Vec<(f64, f64)>)], marks: &[(f64, String)]) -> String {
        let (w, h, pad, legend) = (760.0, 420.0, 50.0, 220.0);
        let pts = || {
            curves
                .iter()
                .flat_map(|(_, c)| c.iter())
                .filter(|p| p.0.is_finite() && p.1.is_finite() && (!self.log_x || p.0 > 0.0))
        };
        let fx = |x: f64| if self.log_x { x.ln() } else { x };
        let (mut x0, mut x1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(fx(p.0)), b.max(fx(p.0)))
        });
        if x0.partial_cmp(&x1) != Some(std::cmp::Ordering::Less) {
            (x0, x1) = (fx(if self.log_x { 0.1 } else { 0.0 }), fx(1.0));
        }
        let y0 = pts().map(|p| p.1).fold(0.0, f64::min);
        let y1 = pts().map(|p| p.1).fold(y0 + 0.05, f64::max);
        let x = |v: f64| pad + (fx(v) - x0) / (x1 - x0) * (w - 2.0 * pad - legend);
        let y = |v: f64| h - pad - (v - y0) / (y1 - y0) * (h - 2.0 * pad);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{pad}\" y=\"20\" font-size=\"13\">{7}</text>\n\
             <line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
             <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"black\"/>\n\
             <text x=\"{2}\" y=\"{3}\">{4}</text>\n<text x=\"8\" y=\"{5}\">{6}</text>\n",
            h - pad,
            w - pad - legend,
            (w - legend) / 2.0 - 20.0,
            h - 12.0,
            escape(self.x_label),
            pad - 10.0,
            escape(self.y_label),
            escape(self.title),
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let v = if self.log_x {
                (x0 + f * (x1 - x0)).exp()
            } else {
                x0 + f * (x1 - x0)
            };
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\">{}</text>",
                x(v) - 8.0,
                h - pad + 14.0,
                short(v)
            );
            let r = y0 + f * (y1 - y0);
            let _ = writeln!(
                s,
                "<text x=\"8\" y=\"{:.1}\">{}</text>",
                y(r) + 4.0,
                short(r)
            );
        }
        for (v, label) in marks
            .iter()
            .filter(|m| m.0.is_finite() && (!self.log_x || m.0 > 0.0))
        {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{pad}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{2:.1}\" y=\"{3}\" fill=\"gray\">{4}</text>",
                x(*v),
                h - pad,
                x(*v) + 3.0,
                pad + 10.0,
                escape(label)
            );
        }
        for (i, (name, c)) in curves.iter().enumerate() {
            let col = COLORS[i % COLORS.len()];
            let pts: Vec<String> = c
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite() && (!self.log_x || p.0 > 0.0))
                .map(|&(cv, r)| format!("{:.1},{:.1}", x(cv), y(r)))
                .collect();
            let width = if !self.bold.is_empty() && name.contains(self.bold) {
                3
            } else {
                1
            };
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{col}\" stroke-width=\"{width}\" points=\"{}\"/>",
                pts.join(" ")
            );
            let ly = pad + 16.0 * i as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{col}\" stroke-width=\"{width}\"/>\
                 <text x=\"{2}\" y=\"{3}\">{4}</text>",
                w - legend - 40.0,
                w - legend - 20.0,
                w - legend - 15.0,
                ly + 4.0,
                escape(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A tick label: 3 significant digits.
fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_well_formed_and_skips_bad_points() {
        let c = Chart {
            title: "a <b> & c",
            x_label: "T",
            y_label: "y",
            log_x: true,
            bold: "b",
        };
        let curves = vec![
            ("a".to_string(), vec![(0.02, 1.0), (4.0, 0.0), (0.0, 3.0)]),
            ("b".to_string(), vec![(0.1, f64::NAN), (1.0, 0.5)]),
        ];
        let s = c.svg(&curves, &[(1.0, "T*".into())]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a &lt;b> &amp; c"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(!s.contains("NaN") && !s.contains("inf"));
        assert!(s.contains("stroke-width=\"3\""));
    }
}

//! Line charts as self-contained SVG: the one place that draws the evaluation's plots and the
//! `scan` command's, with the `plotters` crate's SVG backend (text is left to the viewer's
//! sans-serif font; nothing is rasterised).

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// Canvas size and the legend column at its right, in pixels.
const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;
const LEGEND: u32 = 220;

/// The curves' colours, in order (matplotlib's category10, then black).
const COLORS: [RGBColor; 11] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x00, 0x00, 0x00),
];

const GRAY: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// A named curve: (name, points).
pub type Curve = (String, Vec<(f64, f64)>);

impl Chart<'_> {
    /// `curves`: (name, points); `marks`: vertical dashed lines at x with a label. Non-finite
    /// points (and x ≤ 0 on a log axis) are skipped. The y axis runs from min(0, lowest y) to
    /// the highest y; the x axis spans the points and the marks.
    pub fn svg(&self, curves: &[Curve], marks: &[(f64, String)]) -> String {
        let ok_x = |x: f64| x.is_finite() && (!self.log_x || x > 0.0);
        let curves: Vec<(&str, Vec<(f64, f64)>)> = curves
            .iter()
            .map(|(name, c)| {
                let pts = c.iter().copied().filter(|p| ok_x(p.0) && p.1.is_finite());
                (name.as_str(), pts.collect())
            })
            .collect();
        let marks: Vec<(f64, &str)> = marks
            .iter()
            .filter(|m| ok_x(m.0))
            .map(|(x, l)| (*x, l.as_str()))
            .collect();
        let xs = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0));
        let (mut x0, mut x1) = xs
            .chain(marks.iter().map(|m| m.0))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        if x0.partial_cmp(&x1) != Some(std::cmp::Ordering::Less) {
            (x0, x1) = (if self.log_x { 0.1 } else { 0.0 }, 1.0);
        }
        let ys = || curves.iter().flat_map(|c| c.1.iter().map(|p| p.1));
        let y0 = ys().fold(0.0, f64::min);
        let y1 = ys().fold(y0 + 0.05, f64::max);
        let mut svg = String::new();
        let drawn = if self.log_x {
            let ticks = log_ticks(x0, x1);
            let x = (x0..x1).log_scale().with_key_points(ticks);
            self.draw(&mut svg, x, x0..x1, y0..y1, &curves, &marks)
        } else {
            self.draw(&mut svg, x0..x1, x0..x1, y0..y1, &curves, &marks)
        };
        // The layout is fixed and the backend writes to memory: only a bug here can fail.
        drawn.expect("a chart draws into a String");
        svg
    }

    /// Draw onto `svg` with the x coordinate `x_spec` (linear or log) over `xr`.
    fn draw<X>(
        &self,
        svg: &mut String,
        x_spec: X,
        xr: std::ops::Range<f64>,
        yr: std::ops::Range<f64>,
        curves: &[(&str, Vec<(f64, f64)>)],
        marks: &[(f64, &str)],
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let scale = |x: f64| if self.log_x { x.ln() } else { x };
        let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND);
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x_spec, yr.clone())?;
        let fmt = |v: &f64| short(*v);
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .x_labels(6)
            .y_labels(6)
            .bold_line_style(BLACK.mix(0.08))
            .max_light_lines(0)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        let (x0, x1) = (scale(xr.start), scale(xr.end));
        for &(x, label) in marks {
            let dash = DashedPathElement::new(vec![(x, yr.start), (x, yr.end)], 6, 4, GRAY);
            chart.draw_series(std::iter::once(dash))?;
            // The label on the side of the line with more room.
            let right_half = (scale(x) - x0) > (x1 - x0) / 2.0;
            let (dx, h) = if right_half {
                (-3, HPos::Right)
            } else {
                (3, HPos::Left)
            };
            let style = ("sans-serif", 13)
                .into_font()
                .color(&GRAY)
                .pos(Pos::new(h, VPos::Top));
            let text = Text::new(label.to_string(), (dx, 2), style);
            chart.draw_series(std::iter::once(EmptyElement::at((x, yr.end)) + text))?;
        }
        for (i, (name, pts)) in curves.iter().enumerate() {
            let width = if !self.bold.is_empty() && name.contains(self.bold) {
                3
            } else {
                1
            };
            let style = COLORS[i % COLORS.len()].stroke_width(width);
            chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
            let y = 50 + 16 * i as i32;
            legend.draw(&PathElement::new(vec![(0, y), (20, y)], style))?;
            legend.draw(&Text::new(
                name.to_string(),
                (25, y - 7),
                ("sans-serif", 13),
            ))?;
        }
        root.present()?;
        Ok(())
    }
}

/// Ticks of a log axis over [lo, hi]: 1, 2 and 5 times the powers of ten within it, and each
/// end of the range that is at least a fifth of a decade from them; or just the ends and their
/// geometric mean when fewer than three such ticks fall inside.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = vec![];
    for k in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            // 10^k as a literal ("1e-2"), so 0.02 is the same f64 as the one a caller writes.
            let t: f64 = format!("{m}e{k}").parse().expect("a float literal");
            // Within the range up to the rounding of the ends.
            if t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9) {
                out.push(t);
            }
        }
    }
    if out.len() < 3 {
        return vec![lo, (lo * hi).sqrt(), hi];
    }
    let far = |end: f64, tick: f64| (end / tick).log10().abs() >= 0.2;
    if far(lo, out[0]) {
        out.insert(0, lo);
    }
    if far(hi, out[out.len() - 1]) {
        out.push(hi);
    }
    out
}

/// A tick label: at most 3 significant digits, no trailing zeros (0.02, 0.5, 1, 2000).
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
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
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"), "{s}");
        assert!(s.contains("a &lt;b&gt; &amp; c"), "{s}");
        assert!(!s.contains("<b>"), "{s}");
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        // Each curve is one polyline in its colour; the bad points are gone: two points of "a"
        // (x = 0 is off a log axis), one of "b".
        let curve = |color: &str| {
            s.lines()
                .find(|l| l.starts_with("<polyline") && l.contains(color))
                .unwrap_or_else(|| panic!("no {color} curve in {s}"))
                .split("points=\"")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .filter(|p| p.contains(','))
                .count()
        };
        assert_eq!(curve("#1F77B4"), 2);
        assert_eq!(curve("#FF7F0E"), 1);
        assert!(s.contains("stroke-width=\"3\""));
        assert!(s.contains("T*\n</text>"), "{s}");
    }

    #[test]
    fn tick_labels_are_short() {
        for (v, label) in [
            (0.02, "0.02"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.3"),
            (1.0, "1"),
            (2.5, "2.5"),
            (0.0125, "0.0125"),
            (1e-5, "0.00001"),
            (2000.0, "2000"),
            (-0.5, "-0.5"),
            (0.0, "0"),
        ] {
            assert_eq!(short(v), label, "{v}");
        }
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        assert_eq!(
            log_ticks(0.02, 4.0),
            vec![0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0]
        );
        assert_eq!(log_ticks(0.034, 2.26), vec![0.05, 0.1, 0.2, 0.5, 1.0, 2.0]);
        assert_eq!(log_ticks(0.3, 0.4), vec![0.3, (0.3f64 * 0.4).sqrt(), 0.4]);
    }
}

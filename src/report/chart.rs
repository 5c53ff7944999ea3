//! Line charts as inline SVG, drawn with `plotters` into a `String`: the HTML report embeds
//! them, so the report is one file that needs no network and no script to show its charts.
//!
//! A [`Chart`] is plain data (title, axes, series of points); [`Chart::svg`] draws it. The
//! legend sits in its own strip right of the plot, so it never covers a line. Text is laid
//! out with plotters' built-in estimate (no font files are read) and drawn by the browser.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::prelude::*;

/// Width of every chart, pixels.
pub const WIDTH: u32 = 660;
/// Height of every chart, pixels.
pub const HEIGHT: u32 = 360;
/// Width of the legend strip on the right.
const LEGEND_WIDTH: u32 = 185;

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Proportional.
    Linear,
    /// Logarithmic (values ≤ 0 are left out).
    Log,
}

/// How tick labels of an axis are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count: 1.2k, 3.4M.
    Count,
    /// Nanoseconds: 1.50µs, 2.00ms.
    Nanos,
    /// Bytes: 1.5MiB.
    Bytes,
    /// A small per-op figure: 0.0012, 0.250, 1.000.
    Ratio,
}

/// How a series' line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// A solid line with markers.
    Solid,
    /// A dashed line without markers (references and secondary figures).
    Dashed,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text (empty: not in the legend).
    pub label: String,
    /// Colour, RGB.
    pub colour: (u8, u8, u8),
    /// Solid or dashed.
    pub stroke: Stroke,
    /// Marker shape index (0 circle, 1 triangle, 2 cross), for telling result files apart.
    pub marker: usize,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, two axes and its series.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title drawn above the plot (and used as the figure's title in the HTML).
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// X scale.
    pub x_scale: Scale,
    /// Y scale.
    pub y_scale: Scale,
    /// Y tick format.
    pub y_unit: Unit,
    /// X ticks: positions and their labels (the workers measured, or percentile names).
    pub x_ticks: Vec<(f64, String)>,
    /// The lines.
    pub series: Vec<Series>,
}

/// Tableau-10 colours: distinct, and readable on white.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Tick label for `v` in `unit`, without trailing zeros ("100ms", "1.5µs", "200k").
pub fn tick(v: f64, unit: Unit) -> String {
    trim_zeros(&tick_raw(v, unit))
}

/// Drops trailing zeros of the number at the start of `s`: "100.00ms" → "100ms".
fn trim_zeros(s: &str) -> String {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if !num.contains('.') {
        return s.to_string();
    }
    let num = num.trim_end_matches('0').trim_end_matches('.');
    format!("{num}{unit}")
}

fn tick_raw(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => super::table::si(v),
        Unit::Ratio => small(v),
        Unit::Nanos => super::table::ns(v),
        Unit::Bytes => {
            let mib = v / (1024.0 * 1024.0);
            if mib >= 10.0 {
                format!("{mib:.0}MiB")
            } else if mib >= 1.0 {
                format!("{mib:.1}MiB")
            } else {
                format!("{:.0}KiB", v / 1024.0)
            }
        }
    }
}

/// A small per-op figure with enough digits to tell 0.001 from 0.
pub fn small(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 10.0 {
        super::table::si(v)
    } else if v.abs() >= 0.01 {
        format!("{v:.3}")
    } else if v.abs() >= 0.0001 {
        format!("{v:.5}")
    } else {
        // Tiny but not zero (one switch in a million ops): keep two significant digits
        // rather than print a misleading 0.00000.
        format!("{v:.1e}")
    }
}

impl Chart {
    /// Draws the chart as a standalone `<svg>` element.
    pub fn svg(&self) -> Result<String, String> {
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let root = root
                .titled(&self.title, ("sans-serif", 21).into_font())
                .map_err(|e| e.to_string())?;
            let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
            self.draw(&plot)?;
            self.draw_legend(&legend)?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(buf)
    }

    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series.iter().flat_map(|s| s.points.iter().copied())
    }

    fn draw(&self, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
        let xs: Vec<f64> = self
            .x_ticks
            .iter()
            .map(|t| t.0)
            .chain(self.points().map(|p| p.0))
            .filter(|&x| self.x_scale == Scale::Linear || x > 0.0)
            .collect();
        let ys: Vec<f64> = self
            .points()
            .map(|p| p.1)
            .filter(|&y| y.is_finite() && (self.y_scale == Scale::Linear || y > 0.0))
            .collect();
        let (x0, x1) = bounds(&xs, self.x_scale, 0.06);
        let (y0, y1) = match self.y_scale {
            Scale::Linear => {
                let top = ys.iter().copied().fold(0.0, f64::max);
                (0.0, if top > 0.0 { top * 1.08 } else { 1.0 })
            }
            Scale::Log => bounds(&ys, Scale::Log, 0.15),
        };
        let x_keys: Vec<f64> = self.x_ticks.iter().map(|t| t.0).collect();
        match (self.x_scale, self.y_scale) {
            (Scale::Linear, Scale::Linear) => {
                self.plot(area, keyed(x0..x1, x_keys.clone()), y0..y1)
            }
            (Scale::Linear, Scale::Log) => self.plot(
                area,
                keyed(x0..x1, x_keys.clone()),
                keyed((y0..y1).log_scale(), log_ticks(y0, y1)),
            ),
            (Scale::Log, Scale::Linear) => {
                self.plot(area, keyed((x0..x1).log_scale(), x_keys.clone()), y0..y1)
            }
            (Scale::Log, Scale::Log) => self.plot(
                area,
                keyed((x0..x1).log_scale(), x_keys.clone()),
                keyed((y0..y1).log_scale(), log_ticks(y0, y1)),
            ),
        }
    }

    fn plot<X, Y>(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        x: X,
        y: Y,
    ) -> Result<(), String>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(42)
            .y_label_area_size(68)
            .build_cartesian_2d(x, y)
            .map_err(|e| e.to_string())?;
        let x_fmt = |v: &f64| {
            self.x_ticks
                .iter()
                .find(|t| (t.0 - v).abs() < 1e-9)
                .map(|t| t.1.clone())
                .unwrap_or_default()
        };
        let y_fmt = |v: &f64| tick(*v, self.y_unit);
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(|e| e.to_string())?;
        let keep = |p: &(f64, f64)| {
            p.1.is_finite()
                && (self.y_scale == Scale::Linear || p.1 > 0.0)
                && (self.x_scale == Scale::Linear || p.0 > 0.0)
        };
        for s in &self.series {
            let colour = RGBColor(s.colour.0, s.colour.1, s.colour.2);
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(keep).collect();
            match s.stroke {
                Stroke::Solid => {
                    chart
                        .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                        .map_err(|e| e.to_string())?;
                    draw_markers(&mut chart, &pts, colour, s.marker)?;
                }
                Stroke::Dashed => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            pts.clone(),
                            6,
                            4,
                            colour.mix(0.8).stroke_width(2),
                        ))
                        .map_err(|e| e.to_string())?;
                    // Hollow markers, so that a lone point (no line to dash) still shows.
                    chart
                        .draw_series(
                            pts.iter()
                                .map(|&p| Circle::new(p, 3, colour.stroke_width(1))),
                        )
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    fn draw_legend(&self, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
        let font = ("sans-serif", 16).into_font();
        let mut y = 24;
        let entries: Vec<&Series> = self.series.iter().filter(|s| !s.label.is_empty()).collect();
        for (shown, s) in entries.iter().enumerate() {
            if y > HEIGHT as i32 - 60 {
                area.draw_text(
                    &format!("… {} more", entries.len() - shown),
                    &font.color(&BLACK),
                    (36, y - 6),
                )
                .map_err(|e| e.to_string())?;
                break;
            }
            let colour = RGBColor(s.colour.0, s.colour.1, s.colour.2);
            let line = vec![(4, y), (30, y)];
            match s.stroke {
                Stroke::Solid => {
                    area.draw(&PathElement::new(line, colour.stroke_width(2)))
                        .map_err(|e| e.to_string())?;
                    draw_marker(area, (17, y), colour, s.marker)?;
                }
                Stroke::Dashed => {
                    for x in [4, 14, 24] {
                        area.draw(&PathElement::new(
                            vec![(x, y), (x + 6, y)],
                            colour.stroke_width(2),
                        ))
                        .map_err(|e| e.to_string())?;
                    }
                }
            }
            let top = y - 6;
            for (i, part) in wrap(&s.label, 20).iter().enumerate() {
                area.draw_text(part, &font.color(&BLACK), (36, top + 14 * i as i32))
                    .map_err(|e| e.to_string())?;
                if i > 0 {
                    y += 14;
                }
            }
            y += 20;
        }
        Ok(())
    }
}

fn draw_markers<DB: DrawingBackend, CT: plotters::coord::CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    pts: &[(f64, f64)],
    colour: RGBColor,
    marker: usize,
) -> Result<(), String> {
    let r = match marker % 3 {
        0 => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled()))),
        1 => chart.draw_series(
            pts.iter()
                .map(|&p| TriangleMarker::new(p, 6, colour.filled())),
        ),
        _ => chart.draw_series(
            pts.iter()
                .map(|&p| Cross::new(p, 5, colour.stroke_width(2))),
        ),
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

fn draw_marker(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    at: (i32, i32),
    colour: RGBColor,
    marker: usize,
) -> Result<(), String> {
    let r = match marker % 3 {
        0 => area.draw(&Circle::new(at, 4, colour.filled())),
        1 => area.draw(&TriangleMarker::new(at, 6, colour.filled())),
        _ => area.draw(&Cross::new(at, 5, colour.stroke_width(2))),
    };
    r.map_err(|e| e.to_string())
}

/// An axis whose ticks are exactly `keys` (the worker counts measured, say) and whose labels
/// come from the chart's own formatter.
struct Keyed<R: Ranged<ValueType = f64>> {
    inner: R,
    keys: Vec<f64>,
}

fn keyed<A>(a: A, keys: Vec<f64>) -> Keyed<A::CoordDescType>
where
    A: AsRangedCoord<Value = f64>,
    A::CoordDescType: Ranged<ValueType = f64>,
{
    Keyed {
        inner: a.into(),
        keys,
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Keyed<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// Splits `s` into lines of about `width` characters at spaces.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines.truncate(3);
    lines
}

/// Axis bounds around `v` with a margin (`pad` of the span; a factor on a log axis).
fn bounds(v: &[f64], scale: Scale, pad: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return match scale {
            Scale::Linear => (0.0, 1.0),
            Scale::Log => (1.0, 10.0),
        };
    }
    match scale {
        Scale::Linear => {
            let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
            (lo - span * pad, hi + span * pad)
        }
        Scale::Log => {
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else {
                (lo / 2.0, hi * 2.0)
            };
            let f = (hi / lo).powf(pad).max(1.2);
            (lo / f, hi * f)
        }
    }
}

/// Ticks for a log axis from `lo` to `hi`: powers of ten, with 2× and 5× steps when the range
/// spans few decades, so that at least a few ticks always show.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades <= 1.5 {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    } else if decades <= 4.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    let mut p = 10f64.powf(lo.log10().floor());
    while p <= hi {
        for s in steps {
            let v = p * s;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        p *= 10.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(y_scale: Scale) -> Chart {
        Chart {
            title: "Throughput".into(),
            x_label: "workers".into(),
            y_label: "ops/s".into(),
            x_scale: Scale::Log,
            y_scale,
            y_unit: Unit::Count,
            x_ticks: vec![(1.0, "1".into()), (2.0, "2".into()), (64.0, "64".into())],
            series: vec![Series {
                label: "threads".into(),
                colour: PALETTE[0],
                stroke: Stroke::Solid,
                marker: 0,
                points: vec![(1.0, 100.0), (2.0, 200.0), (64.0, 6400.0)],
            }],
        }
    }

    #[test]
    fn svg_has_title_ticks_legend_and_a_line() {
        for scale in [Scale::Linear, Scale::Log] {
            let svg = chart(scale).svg().unwrap();
            assert!(svg.starts_with("<svg"), "{svg}");
            // plotters writes each text on its own line.
            assert!(svg.contains("\nThroughput\n") && svg.contains("\nthreads\n"));
            assert!(svg.contains("\n64\n") && svg.contains("\n1k\n"), "{svg}");
            assert!(svg.contains("<polyline"), "{svg}");
        }
    }

    #[test]
    fn log_ticks_always_give_a_few() {
        let t = log_ticks(12_000.0, 48_000.0);
        assert!(t.len() >= 3, "{t:?}");
        assert!(t.iter().all(|&v| (12_000.0..=48_000.0).contains(&v)));
        let t = log_ticks(1e3, 1e9);
        assert_eq!(t, vec![1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]);
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(tick(1e8, Unit::Nanos), "100ms");
        assert_eq!(tick(1500.0, Unit::Nanos), "1.5µs");
        assert_eq!(tick(200_000.0, Unit::Count), "200k");
        assert_eq!(tick(0.0035, Unit::Ratio), "0.0035");
        assert_eq!(tick(0.0, Unit::Ratio), "0");
        assert_eq!(tick(3.0 * 1024.0 * 1024.0, Unit::Bytes), "3MiB");
    }

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(
            wrap("processes · quick@vm 34516dc", 12),
            vec!["processes ·", "quick@vm", "34516dc"]
        );
    }
}

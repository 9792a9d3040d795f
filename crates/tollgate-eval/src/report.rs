//! The visual evaluation report: one self-contained HTML page (no scripts,
//! no external files) with summary tables and inline SVG plots drawn with
//! `plotters`' SVG backend.
//!
//! A [`SeriesPlot`] is the picture of one series or tenant: the signal on
//! top (with what the detector expected, when it has an expectation), the
//! detector's score below it with the alert threshold, the labelled
//! windows or incidents shaded in both panels, the probation/warm-up period
//! greyed, and every alert marked — green inside a labelled window, red
//! outside — so early, late and wrong alerts show at a glance. Long series
//! are reduced to the minimum and maximum of each pixel column, which keeps
//! every spike visible at a fraction of the size.
//!
//! Rendering is pure (data in, `String` out); writing files is left to the
//! caller.

use std::fmt::Write as _;

use plotters::prelude::*;

/// The picture of one series (see the module docs). All `x` values share one
/// unit (rows, minutes, …) named by `x_label`.
#[derive(Debug, Clone, Default)]
pub struct SeriesPlot {
    pub title: String,
    /// One line under the title (e.g. the series' score).
    pub caption: String,
    pub x_label: String,
    pub signal_label: String,
    pub score_label: String,
    pub x: Vec<f64>,
    pub signal: Vec<f64>,
    pub expected: Option<Vec<f64>>,
    pub score: Vec<f64>,
    pub threshold: Option<f64>,
    /// Labelled windows / incidents as `[start, end]` in `x` units, each
    /// with a short label (may be empty).
    pub windows: Vec<(f64, f64, String)>,
    /// Everything before this `x` is warm-up or probation.
    pub warmup_until: Option<f64>,
    /// Alert positions, each with whether it is a true alert (inside a
    /// labelled window, or attributed to an incident).
    pub alerts: Vec<(f64, bool)>,
}

/// A table of the report.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Rows to emphasise (Tollgate's own).
    pub highlight: Vec<usize>,
}

/// One section of the page.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    /// Paragraphs of plain text (escaped when rendered).
    pub notes: Vec<String>,
    pub tables: Vec<Table>,
    /// Standalone figures (already SVG), e.g. ROC curves.
    pub figures: Vec<(String, String)>,
    pub plots: Vec<SeriesPlot>,
}

const WIDTH: u32 = 960;
const SIGNAL_H: u32 = 190;
const SCORE_H: u32 = 120;
/// Points per line after min/max reduction (two per pixel column).
const MAX_POINTS: usize = 2 * WIDTH as usize;

const SIGNAL: RGBColor = RGBColor(40, 90, 160);
const EXPECTED: RGBColor = RGBColor(150, 150, 150);
const SCORE: RGBColor = RGBColor(120, 60, 150);
const WINDOW: RGBColor = RGBColor(250, 200, 60);
const WARMUP: RGBColor = RGBColor(200, 200, 200);
const HIT: RGBColor = RGBColor(30, 150, 60);
const MISS: RGBColor = RGBColor(210, 40, 40);

/// Reduce `(x, y)` to at most `2 × buckets` points: per bucket of
/// consecutive points, its minimum and maximum in their original order.
/// Non-finite values are dropped.
pub fn decimate(x: &[f64], y: &[f64], buckets: usize) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    if pts.len() <= 2 * buckets.max(1) {
        return pts;
    }
    let per = pts.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(2 * buckets);
    for chunk in pts.chunks(per) {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[lo].1 {
                lo = i;
            }
            if p.1 > chunk[hi].1 {
                hi = i;
            }
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    out
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Render one [`SeriesPlot`] as an SVG document.
pub fn series_svg(p: &SeriesPlot) -> String {
    let mut buf = String::new();
    if let Err(e) = draw_series(p, &mut buf) {
        return format!("<p>plot failed: {}</p>", escape(&e.to_string()));
    }
    buf
}

fn draw_series(p: &SeriesPlot, buf: &mut String) -> DrawResult<()> {
    let root = SVGBackend::with_string(buf, (WIDTH, SIGNAL_H + SCORE_H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(SIGNAL_H);
    let (x0, x1) = match (p.x.first(), p.x.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        _ => (0.0, 1.0),
    };
    let sig = decimate(&p.x, &p.signal, MAX_POINTS / 2);
    let exp = p
        .expected
        .as_ref()
        .map(|e| decimate(&p.x, e, MAX_POINTS / 2))
        .unwrap_or_default();
    let (y0, y1) = range(sig.iter().chain(&exp).map(|q| q.1));
    let mut c = ChartBuilder::on(&top)
        .margin(6)
        .x_label_area_size(0)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    c.configure_mesh()
        .disable_x_mesh()
        .y_desc(p.signal_label.as_str())
        .y_labels(4)
        .label_style(("sans-serif", 11))
        .draw()?;
    shade(&mut c, p, y0, y1)?;
    if !exp.is_empty() {
        c.draw_series(LineSeries::new(exp, EXPECTED.stroke_width(1)))?;
    }
    c.draw_series(LineSeries::new(sig, SIGNAL.stroke_width(1)))?;
    for &(a, hit) in &p.alerts {
        let col = if hit { HIT } else { MISS };
        c.draw_series(std::iter::once(PathElement::new(
            vec![(a, y0), (a, y1)],
            col.mix(0.8).stroke_width(1),
        )))?;
        c.draw_series(std::iter::once(TriangleMarker::new(
            (a, y1 - 0.04 * (y1 - y0)),
            5,
            col.filled(),
        )))?;
    }

    let sc = decimate(&p.x, &p.score, MAX_POINTS / 2);
    let (mut s0, mut s1) = range(sc.iter().map(|q| q.1));
    if let Some(t) = p.threshold {
        s0 = s0.min(t);
        s1 = s1.max(t);
    }
    let mut c = ChartBuilder::on(&bottom)
        .margin(6)
        .x_label_area_size(24)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, s0..s1)?;
    c.configure_mesh()
        .disable_x_mesh()
        .y_desc(p.score_label.as_str())
        .x_desc(p.x_label.as_str())
        .y_labels(3)
        .x_labels(8)
        .label_style(("sans-serif", 11))
        .draw()?;
    shade(&mut c, p, s0, s1)?;
    c.draw_series(LineSeries::new(sc, SCORE.stroke_width(1)))?;
    if let Some(t) = p.threshold {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(x0, t), (x1, t)],
            MISS.mix(0.6).stroke_width(1),
        )))?;
    }
    root.present()?;
    Ok(())
}

fn shade<DB: DrawingBackend>(
    c: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    p: &SeriesPlot,
    y0: f64,
    y1: f64,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    if let (Some(w), Some(x0)) = (p.warmup_until, p.x.first()) {
        c.draw_series(std::iter::once(Rectangle::new(
            [(*x0, y0), (w, y1)],
            WARMUP.mix(0.35).filled(),
        )))?;
    }
    for (a, b, _) in &p.windows {
        c.draw_series(std::iter::once(Rectangle::new(
            [(*a, y0), (*b, y1)],
            WINDOW.mix(0.35).filled(),
        )))?;
    }
    Ok(())
}

/// A ROC curve (or any curve in the unit square) with the diagonal.
pub fn curve_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> String {
    let mut buf = String::new();
    let r = (|| -> DrawResult<()> {
        let root = SVGBackend::with_string(&mut buf, (320, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        c.configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(5)
            .y_labels(5)
            .label_style(("sans-serif", 10))
            .draw()?;
        c.draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], EXPECTED))?;
        let colours = [SIGNAL, SCORE, HIT, MISS];
        for (i, (name, pts)) in curves.iter().enumerate() {
            let col = colours[i % colours.len()];
            let mut v = pts.clone();
            if v.len() > MAX_POINTS {
                let step = v.len().div_ceil(MAX_POINTS);
                let last = *v.last().unwrap_or(&(1.0, 1.0));
                v = v.into_iter().step_by(step).collect();
                v.push(last);
            }
            c.draw_series(LineSeries::new(v, col.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col));
        }
        if curves.len() > 1 {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .label_font(("sans-serif", 10))
                .position(SeriesLabelPosition::LowerRight)
                .draw()?;
        }
        root.present()?;
        Ok(())
    })();
    match r {
        Ok(()) => buf,
        Err(e) => format!("<p>plot failed: {}</p>", escape(&e.to_string())),
    }
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

fn anchor(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}\
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}tr.us{background:#e8f1fb;font-weight:bold}\
caption{text-align:left;font-weight:bold;padding:4px 0}figure{margin:1.2em 0}figcaption{font-size:90%;color:#444}\
.legend span{display:inline-block;margin-right:1.2em}.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}\
.figs{display:flex;flex-wrap:wrap;gap:12px}";

/// Render the whole page.
pub fn html(title: &str, intro: &[String], sections: &[Section]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for p in intro {
        let _ = writeln!(o, "<p>{}</p>", escape(p));
    }
    let _ = writeln!(
        o,
        "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#285aa0\"></i>signal</span>\
<span><i class=\"sw\" style=\"background:#969696\"></i>expected</span>\
<span><i class=\"sw\" style=\"background:#783c96\"></i>score</span>\
<span><i class=\"sw\" style=\"background:#fac83c;opacity:.5\"></i>labelled window / incident</span>\
<span><i class=\"sw\" style=\"background:#c8c8c8\"></i>probation / warm-up</span>\
<span><i class=\"sw\" style=\"background:#1e963c\"></i>alert in a window</span>\
<span><i class=\"sw\" style=\"background:#d22828\"></i>alert outside (false) / threshold</span></p>"
    );
    if sections.len() > 1 {
        o.push_str("<ul>");
        for s in sections {
            let _ = write!(
                o,
                "<li><a href=\"#{}\">{}</a></li>",
                anchor(&s.title),
                escape(&s.title)
            );
        }
        o.push_str("</ul>\n");
    }
    for s in sections {
        let _ = writeln!(
            o,
            "<h2 id=\"{}\">{}</h2>",
            anchor(&s.title),
            escape(&s.title)
        );
        for n in &s.notes {
            let _ = writeln!(o, "<p>{}</p>", escape(n));
        }
        for t in &s.tables {
            table(&mut o, t);
        }
        if !s.figures.is_empty() {
            o.push_str("<div class=\"figs\">");
            for (cap, svg) in &s.figures {
                let _ = write!(
                    o,
                    "<figure>{svg}<figcaption>{}</figcaption></figure>",
                    escape(cap)
                );
            }
            o.push_str("</div>\n");
        }
        for p in &s.plots {
            let _ = writeln!(
                o,
                "<figure id=\"{}\"><figcaption><b>{}</b> {}</figcaption>{}</figure>",
                anchor(&p.title),
                escape(&p.title),
                escape(&p.caption),
                series_svg(p)
            );
        }
    }
    o.push_str("</body></html>\n");
    o
}

fn table(o: &mut String, t: &Table) {
    o.push_str("<table>");
    if !t.caption.is_empty() {
        let _ = write!(o, "<caption>{}</caption>", escape(&t.caption));
    }
    o.push_str("<tr>");
    for h in &t.header {
        let _ = write!(o, "<th>{}</th>", escape(h));
    }
    o.push_str("</tr>\n");
    for (i, r) in t.rows.iter().enumerate() {
        o.push_str(if t.highlight.contains(&i) {
            "<tr class=\"us\">"
        } else {
            "<tr>"
        });
        for c in r {
            let _ = write!(o, "<td>{}</td>", escape(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

/// Print a table as aligned text (the CLI's view of the same tables).
pub fn text_table(t: &Table) -> String {
    let cols = t.header.len();
    let mut w = vec![0usize; cols];
    for r in std::iter::once(&t.header).chain(&t.rows) {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    if !t.caption.is_empty() {
        let _ = writeln!(o, "{}", t.caption);
    }
    for (ri, r) in std::iter::once(&t.header).chain(&t.rows).enumerate() {
        let mark = if ri > 0 && t.highlight.contains(&(ri - 1)) {
            "> "
        } else {
            "  "
        };
        o.push_str(mark);
        for (i, c) in r.iter().enumerate().take(cols) {
            let pad = w[i] - c.chars().count();
            if i == 0 {
                let _ = write!(o, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(o, "  {}{c}", " ".repeat(pad));
            }
        }
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_bounds_size() {
        let x: Vec<f64> = (0..10_000).map(f64::from).collect();
        let mut y = vec![0.0; 10_000];
        y[4321] = 9.0;
        y[777] = -3.0;
        let d = decimate(&x, &y, 100);
        assert!(d.len() <= 200);
        assert!(d.contains(&(4321.0, 9.0)) && d.contains(&(777.0, -3.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "order kept");
        assert_eq!(decimate(&x[..10], &y[..10], 100).len(), 10);
    }

    #[test]
    fn page_is_self_contained_with_inline_svg() {
        let plot = SeriesPlot {
            title: "a <series>".into(),
            caption: "caption".into(),
            x_label: "row".into(),
            signal_label: "value".into(),
            score_label: "score".into(),
            x: (0..500).map(f64::from).collect(),
            signal: (0..500).map(|i| (f64::from(i) / 20.0).sin()).collect(),
            expected: Some(vec![0.0; 500]),
            score: (0..500).map(|i| if i == 300 { 1.0 } else { 0.1 }).collect(),
            threshold: Some(0.5),
            windows: vec![(280.0, 320.0, "w".into())],
            warmup_until: Some(75.0),
            alerts: vec![(300.0, true), (450.0, false)],
        };
        let sec = Section {
            title: "NAB".into(),
            notes: vec!["x < y".into()],
            tables: vec![Table {
                caption: "t".into(),
                header: vec!["detector".into(), "score".into()],
                rows: vec![vec!["Tollgate".into(), "1.0".into()]],
                highlight: vec![0],
            }],
            figures: vec![(
                "roc".into(),
                curve_svg(
                    "ROC",
                    "FPR",
                    "TPR",
                    &[("t".into(), vec![(0.0, 0.0), (0.2, 0.9), (1.0, 1.0)])],
                ),
            )],
            plots: vec![plot],
        };
        let page = html("Report", &["intro".into()], &[sec]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg"), "inline SVG");
        assert!(page.contains("a &lt;series&gt;") && page.contains("x &lt; y"));
        assert!(page.contains("class=\"us\""));
        assert!(!page.contains("<script") && !page.contains("src=\""));
        assert_eq!(page.matches("<svg").count(), 2);
        let t = text_table(&sec_table());
        assert!(t.contains("> Tollgate"));
    }

    fn sec_table() -> Table {
        Table {
            caption: String::new(),
            header: vec!["a".into(), "b".into()],
            rows: vec![
                vec!["Tollgate".into(), "2".into()],
                vec!["x".into(), "10".into()],
            ],
            highlight: vec![0],
        }
    }
}

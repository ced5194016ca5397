//! Line charts as inline SVG, drawn on the server from the history's samples: the page loads
//! nothing from anywhere and shows its charts without JavaScript.
//!
//! The x axis is the whole ring (90 samples, 15 minutes at the default interval), newest at
//! the right, so a chart that is filling grows from the right edge as a strip chart does; a
//! sample without a value (no request ended, so no p50) breaks the line rather than drawing
//! a zero that never happened.

use crate::metrics::SLOTS;

use super::html::escape;

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 90.0;
/// Room at the top for the largest value's label.
const TOP: f64 = 14.0;

/// One line of a chart: its name in the legend, its CSS class (a fixed name, never text from
/// the report), and a value per sample, oldest first.
pub(crate) struct Series<'a> {
    pub(crate) name: &'a str,
    pub(crate) class: &'static str,
    pub(crate) points: Vec<Option<f64>>,
}

/// A `<figure>` with the chart `id` (an attribute, for tests and scripts), its caption and
/// `unit` after the largest value.
pub(crate) fn chart(id: &str, caption: &str, unit: &str, series: &[Series<'_>]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .fold(0.0f64, |max, &v| max.max(v));
    let scale = nice_ceiling(max);
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg id=\"chart-{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         preserveAspectRatio=\"none\"><title>{}</title>\
         <line class=\"axis\" x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\"/>\
         <text class=\"max\" x=\"2\" y=\"10\">{} {}</text>",
        escape(caption),
        escape(id),
        escape(caption),
        number(scale),
        escape(unit),
    );
    let samples = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    if samples == 0 {
        svg.push_str("<text class=\"empty\" x=\"120\" y=\"55\">no samples yet</text>");
    }
    for line in series {
        for path in paths(&line.points, scale) {
            svg.push_str(&format!(
                "<path class=\"{}\" data-series=\"{}\" d=\"{path}\"/>",
                line.class,
                escape(line.name)
            ));
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str("<div class=\"legend\">");
        for line in series {
            svg.push_str(&format!(
                "<span class=\"{}\">{}</span>",
                line.class,
                escape(line.name)
            ));
        }
        svg.push_str("</div>");
    }
    svg.push_str("</figure>");
    svg
}

/// The `d` of each unbroken run of values; a lone value is a short flat stroke, to be seen.
fn paths(points: &[Option<f64>], scale: f64) -> Vec<String> {
    let step = WIDTH / (SLOTS - 1) as f64;
    let first_x = WIDTH - step * (points.len().saturating_sub(1)) as f64;
    let y = |v: f64| HEIGHT - (v / scale).clamp(0.0, 1.0) * (HEIGHT - TOP);
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut length = 0;
    for (i, point) in points.iter().enumerate() {
        let x = first_x + step * i as f64;
        match point {
            Some(v) => {
                let verb = if current.is_empty() { 'M' } else { 'L' };
                current.push_str(&format!("{verb}{x:.1} {:.1} ", y(*v)));
                length += 1;
            }
            None => finish(&mut paths, &mut current, &mut length, step),
        }
    }
    finish(&mut paths, &mut current, &mut length, step);
    paths
}

fn finish(paths: &mut Vec<String>, current: &mut String, length: &mut usize, step: f64) {
    if *length == 1 {
        // "M x y " becomes "M x y h step".
        current.push_str(&format!("h{:.1}", step.min(4.0)));
    }
    if !current.is_empty() {
        paths.push(current.trim_end().to_owned());
    }
    current.clear();
    *length = 0;
}

/// The top of the scale: the largest value rounded up to 1, 2 or 5 times a power of ten, so
/// the label is a round number; 1 for an empty chart.
pub(crate) fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&top| top >= max)
        .unwrap_or(10.0 * power)
}

/// A scale label: whole numbers bare, small ones with what precision they need.
fn number(value: f64) -> String {
    if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(42.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn a_missing_value_breaks_the_line_and_the_newest_is_at_the_right_edge() {
        let points = [Some(1.0), Some(2.0), None, Some(2.0)];
        let paths = paths(&points, 2.0);
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(
            paths[0].starts_with('M') && paths[0].contains(" L"),
            "{paths:?}"
        );
        assert!(
            paths[1].starts_with(&format!("M{WIDTH:.1} {TOP:.1}")),
            "{paths:?}"
        );
        assert!(paths[1].contains('h'), "a lone point is drawn: {paths:?}");
    }

    #[test]
    fn a_chart_without_samples_says_so_and_names_are_escaped() {
        let series = [Series {
            name: "<b>",
            class: "a",
            points: vec![],
        }];
        let svg = chart("x", "req/s <i>", "/s", &series);
        assert!(svg.contains("no samples yet"), "{svg}");
        assert!(!svg.contains("<i>") && svg.contains("&lt;i&gt;"), "{svg}");
    }
}

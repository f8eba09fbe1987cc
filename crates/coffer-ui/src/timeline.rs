//! The 90-day rotation timeline, drawn server-side as inline SVG (no script).

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

/// Days the timeline covers.
pub(crate) const DAYS: i64 = 90;

/// One secret on the timeline.
pub(crate) struct Point {
    /// `<mount>/<path>`.
    pub(crate) path: String,
    /// When it is due.
    pub(crate) due: DateTime<Utc>,
    /// Its status (ok, due, overdue, failing).
    pub(crate) status: String,
}

fn color(status: &str) -> &'static str {
    match status {
        "overdue" | "failing" => "#b42318",
        "due" => "#b54708",
        _ => "#0a58ca",
    }
}

/// The SVG for `points` as seen at `now`: overdue ones sit at the left
/// edge, those beyond 90 days are left out (and counted in the caption).
pub(crate) fn svg(points: &[Point], now: DateTime<Utc>) -> Markup {
    let (w, left, right, top) = (900.0_f64, 40.0_f64, 45.0_f64, 20.0_f64);
    let span = w - left - right;
    let mut per_day: std::collections::BTreeMap<i64, usize> = Default::default();
    let mut placed = Vec::new();
    let mut later = 0;
    for p in points {
        let days = (p.due - now).num_hours() as f64 / 24.0;
        if days > DAYS as f64 {
            later += 1;
            continue;
        }
        let d = days.max(0.0);
        let slot = per_day.entry(d as i64).or_insert(0);
        *slot += 1;
        placed.push((left + span * d / DAYS as f64, *slot, p));
    }
    let rows = per_day.values().copied().max().unwrap_or(1).max(1);
    let h = top + 30.0 + 16.0 * rows as f64 + 10.0;
    let axis_y = h - 30.0;
    html! {
        figure {
            svg.timeline viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="tl-title tl-desc" xmlns="http://www.w3.org/2000/svg" {
                title id="tl-title" { "Rotations due in the next 90 days" }
                desc id="tl-desc" { (placed.len()) " secrets due within 90 days; " (later) " later." }
                line x1=(left) y1=(axis_y) x2=(w - right) y2=(axis_y) stroke="#57606a" {}
                @for t in (0..=DAYS).step_by(15) {
                    @let x = left + span * t as f64 / DAYS as f64;
                    line x1=(x) y1=(axis_y) x2=(x) y2=(axis_y + 5.0) stroke="#57606a" {}
                    text x=(x) y=(axis_y + 20.0) font-size="12" text-anchor="middle" fill="#1b1f24" {
                        @if t == 0 { "today" } @else { ((now + Duration::days(t)).format("%d %b").to_string()) }
                    }
                }
                @for (x, slot, p) in &placed {
                    circle cx=(format!("{x:.1}")) cy=(format!("{:.1}", axis_y - 16.0 * *slot as f64)) r="6" fill=(color(&p.status)) {
                        title { (p.path) ": " (p.status) ", due " (p.due.format("%Y-%m-%d %H:%M UTC").to_string()) }
                    }
                }
            }
            figcaption.muted { "Each dot is a secret at its due date (red: overdue or failing, at today; amber: due). " (later) " due later than 90 days." }
        }
    }
}

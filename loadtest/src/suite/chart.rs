//! The suite's `chart.svg`: RSS per idle connection (bars per size and server) and the
//! fan-out delivery-time distribution at the largest size (one line per server), as plain
//! SVG text.
//!
//! Uses: `results` (figures out of results.json).

use super::results::{fmt_num, median_run, server_names, sizes, value_of};
use serde_json::Value;
use std::fmt::Write as _;

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A round axis maximum >= v.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// Two panels: RSS per idle connection (bars per size and server) and the fan-out
/// delivery-time distribution at the largest size (one line per server).
pub fn svg(results: &Value) -> String {
    let names = server_names(results);
    let (w, h) = (900.0, 380.0);
    let mut s = String::new();
    let _ = writeln!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">");
    let _ = writeln!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    // Left panel: bars.
    let (x0, y0, pw, ph) = (70.0, 50.0, 330.0, 260.0);
    let idle = sizes(results, "idle");
    let mut vals = Vec::new();
    for k in &idle {
        for n in &names {
            vals.push(value_of(results, n, k, "rss_per_conn").unwrap_or(0.0));
        }
    }
    let vmax = nice_max(vals.iter().cloned().fold(0.0, f64::max));
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"14\">Server RSS per idle connection (bytes)</text>", x0 + pw / 2.0);
    axes(&mut s, x0, y0, pw, ph, vmax, "");
    let group = pw / idle.len().max(1) as f64;
    let bw = group * 0.7 / names.len().max(1) as f64;
    for (gi, k) in idle.iter().enumerate() {
        let gx = x0 + gi as f64 * group + group * 0.15;
        for si in 0..names.len() {
            let v = vals.get(gi * names.len() + si).copied().unwrap_or(0.0);
            let bh = (v / vmax * ph).max(0.0);
            let x = gx + si as f64 * bw;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                y0 + ph - bh,
                bw - 2.0,
                COLORS[si % 4]
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                x + bw / 2.0 - 1.0,
                y0 + ph - bh - 4.0,
                fmt_num(v)
            );
        }
        let label = k.split_once('@').map_or(k.as_str(), |x| x.1);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label} conns</text>",
            gx + group * 0.35,
            y0 + ph + 18.0
        );
    }
    // Right panel: CDF lines.
    let (x1, pw2) = (500.0, 360.0);
    let big = sizes(results, "fanout").pop().unwrap_or_default();
    let n = big.split_once('@').map_or("", |x| x.1);
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"14\">Fan-out to {n}: share delivered vs time (ms)</text>", x1 + pw2 / 2.0);
    let cdfs: Vec<Vec<f64>> = names
        .iter()
        .map(|nm| {
            median_run(results, nm, &big, "last_ms")
                .and_then(|r| r["cdf_ms"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_f64)
                .collect()
        })
        .collect();
    let tmax = nice_max(cdfs.iter().flatten().cloned().fold(0.0, f64::max));
    axes(&mut s, x1, y0, pw2, ph, 100.0, "%");
    for i in 0..=4 {
        let t = tmax * i as f64 / 4.0;
        let x = x1 + pw2 * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y0 + ph + 18.0,
            fmt_num(t)
        );
    }
    for (si, c) in cdfs.iter().enumerate() {
        if c.is_empty() {
            continue;
        }
        let pts: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(p, &t)| {
                format!(
                    "{:.1},{:.1}",
                    x1 + t / tmax * pw2,
                    y0 + ph - p as f64 / (c.len() - 1).max(1) as f64 * ph
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            COLORS[si % 4],
            pts.join(" ")
        );
    }
    // Legend.
    for (si, nm) in names.iter().enumerate() {
        let x = 70.0 + si as f64 * 160.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            h - 30.0,
            COLORS[si % 4]
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 18.0,
            h - 20.0,
            xml_escape(nm)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn axes(s: &mut String, x0: f64, y0: f64, pw: f64, ph: f64, vmax: f64, unit: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>",
        y0 + ph
    );
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        y0 + ph,
        x0 + pw,
        y0 + ph
    );
    for i in 0..=4 {
        let v = vmax * i as f64 / 4.0;
        let y = y0 + ph - ph * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            x0 + pw
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::results::sample;
    use super::*;

    #[test]
    fn svg_is_well_formed_enough() {
        let s = svg(&sample());
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<rect").count(), 1 + 2 + 2);
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(430.0), 500.0);
        assert_eq!(nice_max(1400.0), 2000.0);
        assert_eq!(nice_max(2.2), 2.5);
    }
}

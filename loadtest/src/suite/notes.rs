//! The paragraphs under the suite's table that set the servers against the kernel floors
//! measured in the same run: publish CPU per push against `floor-server` (`floor` in
//! results.json), and the fan-out's CPU for the push and last delivery against
//! `floor-server --fanout` (`floor_fanout`, size by size). Medians over rounds.
//!
//! Uses: `results` (figures out of results.json).

use super::results::{fmt_num, median, server_names, sizes, value_of};
use serde_json::Value;
use std::fmt::Write as _;

/// The paragraph under the table that sets each server's publish CPU against the floor.
pub(super) fn floor_note(results: &Value) -> Option<String> {
    // One run (an object) or one per round (an array): the median.
    let floor_runs: Vec<&Value> = match &results["floor"] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let floor = median(
        floor_runs
            .iter()
            .filter_map(|r| r["server_cpu_per_push_us"].as_f64())
            .collect(),
    )?;
    if floor <= 0.0 {
        return None;
    }
    let names = server_names(results);
    let key = sizes(results, "publish").pop()?;
    let per: Vec<(String, f64)> = names
        .iter()
        .filter_map(|n| {
            let v = value_of(results, n, &key, "server_cpu_per_push_us")?;
            Some((n.clone(), v))
        })
        .collect();
    let mut s = format!(
        "\nKernel floor of the publish exchange, same run: `realplexor-loadtest floor-server`, a \
         minimal epoll server that only parks a listener, forwards one body and closes \
         (TCP_DEFER_ACCEPT, read after accept, MSG_MORE), used **{} us** of CPU per push. ",
        fmt_num(floor)
    );
    let parts: Vec<String> = per
        .iter()
        .map(|(n, v)| format!("{n} {} us = {:.2}x the floor", fmt_num(*v), v / floor))
        .collect();
    s.push_str(&parts.join("; "));
    s.push('.');
    if let Some((other, v)) = per.get(1) {
        let _ = write!(
            s,
            " A quarter of {other}'s figure would be {} us, {:.2}x the floor.",
            fmt_num(v / 4.0),
            v / 4.0 / floor
        );
    }
    s.push('\n');
    Some(s)
}

/// The paragraph setting each server's fan-out (CPU for the push, last delivery) against
/// the fan-out floor's, size by size (medians over rounds).
pub(super) fn fanout_floor_note(results: &Value) -> Option<String> {
    let floor_runs = results["floor_fanout"].as_array()?;
    let names = server_names(results);
    let mut sentences = Vec::new();
    for key in sizes(results, "fanout") {
        let floor = |field: &str| {
            median(
                floor_runs
                    .iter()
                    .filter(|r| r["key"] == key.as_str())
                    .filter_map(|r| r[field].as_f64())
                    .collect(),
            )
        };
        let (Some(cpu), Some(last)) = (floor("server_cpu_ms"), floor("last_ms")) else {
            continue;
        };
        if cpu <= 0.0 || last <= 0.0 {
            continue;
        }
        let n = key.split_once('@').map_or("", |x| x.1);
        let parts: Vec<String> = names
            .iter()
            .filter_map(|nm| {
                let c = value_of(results, nm, &key, "server_cpu_ms")?;
                let l = value_of(results, nm, &key, "last_ms")?;
                Some(format!(
                    "{nm} {} ms = {:.2}x the floor, last delivery {} ms = {:.2}x",
                    fmt_num(c),
                    c / cpu,
                    fmt_num(l),
                    l / last
                ))
            })
            .collect();
        sentences.push(format!(
            "To {n} listeners it used **{} ms** of CPU for the push and delivered the last \
             one at {} ms{}{}.",
            fmt_num(cpu),
            fmt_num(last),
            if parts.is_empty() { "" } else { ": " },
            parts.join("; ")
        ));
    }
    if sentences.is_empty() {
        return None;
    }
    Some(format!(
        "\nKernel floor of the fan-out, same run, alternating with the servers: \
         `realplexor-loadtest floor-server --fanout`, a minimal epoll server that parks every \
         listener and on the push writes the one body to each and closes it (data and FIN in \
         one segment). {}\n",
        sentences.join(" ")
    ))
}

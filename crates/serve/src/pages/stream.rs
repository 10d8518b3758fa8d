//! The pages' live streams (Server-Sent Events; the pages' script listens with
//! `EventSource`):
//! - `/stream/overview`: every second, `projects`: each project's line of the overview.
//! - `/projects/{id}/stream?window=S&points=P`: the project page's live parts: `view` (the
//!   run's figures) once a second, `log` and `dead` when they change, `idle` while the project
//!   has not run, and `rows`: the processed rows sampled for the chart, decimated by the
//!   server so that a chart of the last `S` seconds gets at most about `P` points a series.
//!   On connecting, the kept rows of the last `S` seconds come first (evenly thinned to `P`);
//!   then new rows every 50 ms, at most `P / S` a second on average.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{Browser, PageError};
use crate::api::AppState;

/// How often the rows are looked at.
const TICK: Duration = Duration::from_millis(50);

type Tx = tokio::sync::mpsc::Sender<Event>;

/// An SSE answer fed by a task: the task ends when the browser goes away (its sends fail).
fn sse_from<F>(f: impl FnOnce(Tx) -> F) -> Response
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    tokio::spawn(f(tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /stream/overview`.
pub async fn overview(State(state): State<AppState>, _: Browser) -> Response {
    sse_from(move |tx| async move {
        loop {
            if closing(&state) {
                return;
            }
            let rows = state.store.projects().await.unwrap_or_default();
            let lines: Vec<_> = rows
                .iter()
                .map(|r| super::overview::line(r, &state))
                .collect();
            let Ok(event) = Event::default().event("projects").json_data(&lines) else {
                return;
            };
            if tx.send(event).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// `?window=SECONDS&points=N`.
#[derive(Debug, serde::Deserialize)]
pub struct Window {
    /// Seconds of data the chart shows (10 to 600, default 120).
    pub window: Option<u64>,
    /// Points a series, at most (100 to 5000, default 2000).
    pub points: Option<usize>,
}

/// Every `k`-th of `items` so that at most `n` remain, evenly spread, the newest kept.
pub fn thin<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n || n == 0 {
        return if n == 0 { Vec::new() } else { items.to_vec() };
    }
    let len = items.len();
    // pick n indices spread evenly, ending with the last
    (0..n)
        .map(|k| items[(len - 1) - (n - 1 - k) * (len - 1) / (n - 1).max(1)].clone())
        .collect()
}

fn rows_event(rows: &[streamprep_engine::Sampled]) -> Option<Event> {
    let rows: Vec<Value> = rows
        .iter()
        .filter_map(|s| {
            serde_json::from_str::<Value>(&s.row)
                .ok()
                .map(|r| json!({ "t": s.at_ms, "row": r }))
        })
        .collect();
    Event::default().event("rows").json_data(rows).ok()
}

/// `GET /projects/{id}/stream`.
pub async fn project(
    State(state): State<AppState>,
    _: Browser,
    Path(id): Path<String>,
    Query(w): Query<Window>,
) -> Result<Response, PageError> {
    state.store.project(&id).await?;
    let window = w.window.unwrap_or(120).clamp(10, 600);
    let points = w.points.unwrap_or(2000).clamp(100, 5000);
    Ok(sse_from(move |tx| async move {
        let per_s = points as f64 / window as f64;
        // the run being watched: (its run id, its handle, the next sampled row to send)
        let mut watching: Option<(String, streamprep_project::RunHandle, u64)> = None;
        let (mut credit, mut ticks, mut logged, mut dead_seen) = (0.0f64, 0u64, 0u64, usize::MAX);
        let leave = |w: &Option<(String, streamprep_project::RunHandle, u64)>| {
            if let Some((_, h, _)) = w {
                h.tap().leave();
            }
        };
        loop {
            if closing(&state) {
                leave(&watching);
                return;
            }
            let current = state.active.get(&id);
            let changed = match (&watching, &current) {
                (Some((run, _, _)), Some(c)) => *run != c.run_id,
                (None, Some(_)) => true,
                _ => false,
            };
            if changed {
                leave(&watching);
                watching = current.map(|c| {
                    c.handle.tap().join();
                    let from_ms = now_ms().saturating_sub(window * 1000);
                    let (history, next) = c.handle.tap().history(from_ms);
                    let first = thin(&history, points);
                    if let Some(e) = rows_event(&first) {
                        let _ = tx.try_send(e);
                    }
                    (c.run_id, c.handle, next)
                });
                (logged, dead_seen) = (0, usize::MAX);
            }
            let mut sends = Vec::new();
            if let Some((_, h, next)) = &mut watching {
                credit = (credit + per_s * TICK.as_secs_f64()).min(per_s.max(1.0));
                let (rows, after) = h.tap().since(*next);
                *next = after;
                let take = (credit.floor() as usize).min(rows.len());
                if take > 0 {
                    credit -= take as f64;
                    if let Some(e) = rows_event(&thin(&rows, take)) {
                        sends.push(e);
                    }
                }
                if ticks.is_multiple_of(20) {
                    let view = h.view();
                    if let Ok(e) = Event::default().event("view").json_data(&view) {
                        sends.push(e);
                    }
                    let log: Vec<_> = h
                        .recent_events()
                        .into_iter()
                        .filter(|e| e.at_ms > logged)
                        .collect();
                    if let Some(last) = log.last() {
                        logged = last.at_ms;
                        if let Ok(e) = Event::default().event("log").json_data(&log) {
                            sends.push(e);
                        }
                    }
                    let dead = h.dead_letters();
                    let count = view.figures.counts.dead_letters as usize;
                    if count != dead_seen {
                        dead_seen = count;
                        if let Ok(e) = Event::default().event("dead").json_data(&dead) {
                            sends.push(e);
                        }
                    }
                }
            } else if ticks.is_multiple_of(20) {
                sends.push(Event::default().event("idle").data("{}"));
            }
            for e in sends {
                if tx.send(e).await.is_err() {
                    leave(&watching);
                    return;
                }
            }
            ticks += 1;
            tokio::time::sleep(TICK).await;
        }
    }))
}

/// The server is stopping: streams end, so the graceful shutdown does not wait for them.
fn closing(state: &AppState) -> bool {
    state
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::thin;

    #[test]
    fn thinning_keeps_at_most_n_evenly_and_the_newest() {
        let xs: Vec<u32> = (0..10_000).collect();
        let t = thin(&xs, 2000);
        assert_eq!(t.len(), 2000);
        assert_eq!(*t.last().expect("some"), 9_999);
        assert_eq!(t[0], 0);
        assert!(t.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 6));
        assert_eq!(thin(&xs[..5], 2000), xs[..5].to_vec());
        assert_eq!(thin(&xs, 1), vec![9_999]);
        assert!(thin(&xs, 0).is_empty());
    }
}

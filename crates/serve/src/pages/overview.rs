//! The projects overview (the paper's figure 5): every project with its state, method,
//! buffer, workers, rows a second in and out, measured rho, dead letters and a rate
//! sparkline, start and stop buttons for operators; kept live by `/stream/overview`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use streamprep_project::ProjectSpec;

use super::{figure, html, Browser, Chrome, PageError};
use crate::api::AppState;
use crate::store::ProjectRow;

/// One project's line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its source.
    pub source: String,
    /// idle, starting, running, stopping, finished, failed: ...
    pub state: String,
    /// A run is going on (stop, not start).
    pub active: bool,
    /// inline, pool or queue.
    pub method: String,
    /// Rows a message (or auto).
    pub buffer: String,
    /// Workers.
    pub workers: String,
    /// Rows a second read, the last second.
    pub rows_in: String,
    /// Rows a second written, the last second.
    pub rows_out: String,
    /// Measured utilisation.
    pub rho: String,
    /// Rows sent to the dead letters.
    pub dead_letters: String,
    /// Messages waiting.
    pub backlog: String,
}

/// A project's line now.
pub fn line(row: &ProjectRow, state: &AppState) -> Line {
    let spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
    let run = state.active.get(&row.id);
    let view = run.as_ref().map(|c| c.handle.view());
    let method = spec
        .method
        .map_or("inline".to_string(), |m| format!("{m:?}").to_lowercase());
    let workers = match (&view, spec.workers) {
        (Some(v), _) if v.figures.live.workers > 0 => v.figures.live.workers.to_string(),
        (_, Some(w)) => w.to_string(),
        _ if method == "pool" => "cores".into(),
        _ => "1".into(),
    };
    let buffer = match (&view, &spec.buffer) {
        (Some(v), _) if v.figures.buffer > 0 => v.figures.buffer.to_string(),
        (_, Some(streamprep_project::BufferSetting::Rows(n))) => n.to_string(),
        (_, Some(streamprep_project::BufferSetting::Word(w))) => w.clone(),
        _ => "-".into(),
    };
    let dash = || "-".to_string();
    Line {
        id: row.id.clone(),
        name: row.name.clone(),
        source: crate::projects::masked(&spec).source.unwrap_or_default(),
        state: view
            .as_ref()
            .map_or("idle".to_string(), |v| v.state.to_string()),
        active: view.as_ref().is_some_and(|v| !v.state.is_over()),
        method,
        buffer,
        workers,
        rows_in: view
            .as_ref()
            .map_or_else(dash, |v| figure(v.figures.live.rows_in_per_s, 0)),
        rows_out: view
            .as_ref()
            .map_or_else(dash, |v| figure(v.figures.live.rows_out_per_s, 0)),
        rho: view
            .as_ref()
            .map_or_else(dash, |v| figure(v.figures.live.rho_measured, 3)),
        dead_letters: view
            .as_ref()
            .map_or_else(dash, |v| v.figures.counts.dead_letters.to_string()),
        backlog: view
            .as_ref()
            .map_or_else(dash, |v| v.figures.counts.backlog.to_string()),
    }
}

/// The overview.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// The frame.
    pub chrome: Chrome,
    /// Every project.
    pub lines: Vec<Line>,
}

/// `GET /`.
pub async fn page(State(state): State<AppState>, browser: Browser) -> Result<Response, PageError> {
    let rows = state.store.projects().await?;
    Ok(html(&OverviewPage {
        chrome: browser.chrome("overview"),
        lines: rows.iter().map(|r| line(r, &state)).collect(),
    }))
}

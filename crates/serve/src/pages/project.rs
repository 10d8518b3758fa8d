//! A project's page: what it is, start and stop, live charts of its processed data and of its
//! capacity figures, the last dead letters, the log and the run history (the live parts come
//! from `/projects/{id}/stream`); and the buttons' actions.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use streamprep_project::ProjectSpec;

use super::{html, see_other, when, Browser, Chrome, PageError, Posted};
use crate::api::AppState;
use crate::store::Role;

/// A past or current run.
#[derive(Debug, Clone)]
pub struct RunLine {
    /// Its id.
    pub id: String,
    /// When it started (UTC).
    pub started: String,
    /// Who started it.
    pub started_by: String,
    /// When it ended, or empty.
    pub ended: String,
    /// Who stopped it, or empty.
    pub stopped_by: String,
    /// running, finished, failed: ..., interrupted.
    pub state: String,
    /// Rows in, out, dead letters, as text.
    pub summary: String,
}

/// One field of the spec as shown.
#[derive(Debug, Clone)]
pub struct SpecLine {
    /// The field's name in a project file.
    pub field: String,
    /// Its value.
    pub value: String,
}

/// The project page.
#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    /// The frame.
    pub chrome: Chrome,
    /// The project's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its line in the overview (state, figures).
    pub line: super::overview::Line,
    /// Its spec, field by field (secrets masked).
    pub spec: Vec<SpecLine>,
    /// Its runs, newest first.
    pub runs: Vec<RunLine>,
}

fn spec_lines(spec: &ProjectSpec) -> Vec<SpecLine> {
    let masked = crate::projects::masked(spec);
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&masked) else {
        return Vec::new();
    };
    map.into_iter()
        .filter(|(k, _)| k != "name" && k != "description")
        .map(|(field, v)| SpecLine {
            field,
            value: match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            },
        })
        .collect()
}

fn summary(v: &Option<serde_json::Value>) -> String {
    let Some(s) = v else {
        return String::new();
    };
    let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    format!(
        "{} rows in, {} out, {} dead letters, {} dropped",
        n("rows_in"),
        n("rows_out"),
        n("dead_letters"),
        n("dropped")
    )
}

/// `GET /projects/{id}`.
pub async fn page(
    State(state): State<AppState>,
    browser: Browser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let row = state.store.project(&id).await?;
    let spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
    let runs = state
        .store
        .runs(&id)
        .await?
        .into_iter()
        .take(20)
        .map(|r| RunLine {
            id: r.id,
            started: when(r.started_ms),
            started_by: r.started_by,
            ended: r.ended_ms.map(when).unwrap_or_default(),
            stopped_by: r.stopped_by.unwrap_or_default(),
            state: r.state,
            summary: summary(&r.summary),
        })
        .collect();
    Ok(html(&ProjectPage {
        chrome: browser.chrome("overview"),
        line: super::overview::line(&row, &state),
        id: row.id,
        name: row.name,
        description: spec.description.clone().unwrap_or_default(),
        spec: spec_lines(&spec),
        runs,
    }))
}

/// `GET /projects/{id}/export`: the project file (TOML, secrets masked), as a download.
pub async fn export(
    State(state): State<AppState>,
    _: Browser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let row = state.store.project(&id).await?;
    let spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
    // the file name is the id (random hex): nothing a user typed goes into the header
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/toml; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"project-{}.toml\"", row.id),
            ),
        ],
        crate::projects::masked(&spec).to_toml(),
    )
        .into_response())
}

/// Back to where the button was (`back` = `overview` or the project page).
fn back(posted: &Posted, id: &str) -> String {
    if posted.get("back") == "overview" {
        "/".into()
    } else {
        format!("/projects/{id}")
    }
}

/// `POST /projects/{id}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    crate::projects::start_project(&state, &id, &posted.browser.user.name).await?;
    Ok(see_other(&back(&posted, &id)))
}

/// `POST /projects/{id}/stop`.
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    crate::projects::stop_project(&state, &id, &posted.browser.user.name).await?;
    Ok(see_other(&back(&posted, &id)))
}

/// `POST /projects/{id}/delete` (not while it runs).
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    crate::projects::delete_project(&state, &id, &posted.browser.user.name).await?;
    Ok(see_other("/"))
}

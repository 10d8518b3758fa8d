//! The history page: ask a table's time range at a resolution (a history job, see
//! `crate::history`), follow the job's progress, see the decimated series on a chart, cancel
//! it, and zoom (a span selected on the chart asks again for that span).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::{html, see_other, Browser, Chrome, PageError, Posted};
use crate::api::AppState;
use crate::history::HistoryQuery;
use crate::projects::{mask_url, MASK};
use crate::store::Role;

/// The form's fields, as typed.
#[derive(Debug, Clone, Default)]
pub struct HistoryForm {
    /// The table's address.
    pub source: String,
    /// The time column.
    pub time_column: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// Columns, comma-separated.
    pub columns: String,
    /// A resample interval.
    pub interval: String,
    /// Points.
    pub points: String,
}

/// The page.
#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    /// The frame.
    pub chrome: Chrome,
    /// The form.
    pub f: HistoryForm,
    /// Tables to suggest: the projects' PostgreSQL sinks.
    pub sources: Vec<String>,
    /// The job shown.
    pub job: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// `?job=ID` and the form's fields to fill in.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Shown {
    job: Option<String>,
    source: Option<String>,
    time_column: Option<String>,
    from: Option<String>,
    to: Option<String>,
    columns: Option<String>,
    interval: Option<String>,
    points: Option<String>,
}

/// The projects' PostgreSQL sinks (with their passwords: for the server only).
async fn project_sinks(state: &AppState) -> Result<Vec<String>, PageError> {
    Ok(state
        .store
        .projects()
        .await?
        .into_iter()
        .filter_map(|p| {
            streamprep_project::ProjectSpec::from_json(&p.spec_json)
                .ok()?
                .sink
                .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
        })
        .collect())
}

/// The tables to suggest: the projects' PostgreSQL sinks, passwords masked.
async fn sources(state: &AppState) -> Result<Vec<String>, PageError> {
    Ok(project_sinks(state)
        .await?
        .iter()
        .map(|s| mask_url(s))
        .collect())
}

/// A source sent back with its password masked: the one it stands for (a job's, a
/// project's sink's), or why not.
async fn unmasked(state: &AppState, source: &str) -> Result<String, String> {
    if !source.contains(MASK) {
        return Ok(source.to_string());
    }
    if let Some(real) = state.history.real_source(source) {
        return Ok(real);
    }
    project_sinks(state)
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|s| mask_url(s) == source))
        .ok_or_else(|| "source: the password is masked; type it again".into())
}

/// `GET /history`.
pub async fn page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<Shown>,
) -> Result<Response, PageError> {
    let job = q.job.filter(|id| state.history.knows(id));
    // a job's page shows its question (the source's password masked); otherwise what the
    // address says, or the defaults
    let f = match job.as_deref().and_then(|id| state.history.query_of(id)) {
        Some(asked) => HistoryForm {
            source: mask_url(&asked.source),
            time_column: asked.time_column,
            from: asked.from,
            to: asked.to,
            columns: asked.columns.join(","),
            interval: asked.interval.unwrap_or_default(),
            points: asked.points.map(|p| p.to_string()).unwrap_or_default(),
        },
        None => HistoryForm {
            source: mask_url(&q.source.unwrap_or_default()),
            time_column: q.time_column.unwrap_or_else(|| "ts".into()),
            from: q.from.unwrap_or_default(),
            to: q.to.unwrap_or_default(),
            columns: q.columns.unwrap_or_default(),
            interval: q.interval.unwrap_or_else(|| "1s".into()),
            points: q.points.unwrap_or_else(|| "2000".into()),
        },
    };
    Ok(html(&HistoryPage {
        chrome: browser.chrome("history"),
        f,
        sources: sources(&state).await?,
        job,
        error: None,
    }))
}

/// `POST /history`: start (or join) the job, then show it.
pub async fn submit(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    let g = |k: &str| posted.get(k).trim().to_string();
    let f = HistoryForm {
        source: g("source"),
        time_column: g("time_column"),
        from: g("from"),
        to: g("to"),
        columns: g("columns"),
        interval: g("interval"),
        points: g("points"),
    };
    let source = unmasked(&state, &f.source).await;
    let points = if f.points.is_empty() {
        Ok(None)
    } else {
        f.points
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("points: '{}' is not a whole number", f.points))
    };
    let asked = source
        .and_then(|source| points.map(|p| (source, p)))
        .and_then(|(source, points)| {
            let q = HistoryQuery {
                source,
                time_column: if f.time_column.is_empty() {
                    "ts".into()
                } else {
                    f.time_column.clone()
                },
                from: f.from.clone(),
                to: f.to.clone(),
                columns: f
                    .columns
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
                interval: Some(f.interval.clone()).filter(|i| !i.is_empty()),
                points,
            };
            state.history.ask(&q).map(|(job, _)| job.id())
        });
    match asked {
        // the job's page shows its question: nothing of it (a password) in the address
        Ok(id) => Ok(see_other(&format!(
            "/history?{}",
            serde_urlencoded::to_string([("job", id.as_str())]).unwrap_or_default()
        ))),
        Err(e) => Ok(html(&HistoryPage {
            chrome: posted.browser.chrome("history"),
            f: HistoryForm {
                source: mask_url(&f.source),
                ..f
            },
            sources: sources(&state).await?,
            job: None,
            error: Some(e),
        })),
    }
}

/// `POST /history/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    state.history.cancel(&id);
    Ok(see_other(&format!(
        "/history?{}",
        serde_urlencoded::to_string([("job", id.as_str())]).unwrap_or_default()
    )))
}

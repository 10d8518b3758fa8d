//! Projects: stored specs (create, read, update, delete, export and import as the CLI's TOML
//! project file), started and stopped through the project library, their live view and run
//! history. Secrets in a spec (the password in a broker's URL) are write-only: answers show
//! `********` in their place, and a spec sent back with `********` keeps the stored one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use streamprep_project::{ProjectSpec, RunHandle, SpecError};
use utoipa::ToSchema;

use crate::access::{ApiError, Auth, Operator};
use crate::api::{AppState, FieldErrorView, Invalid};
use crate::store::{ProjectRow, RunRow};

/// What stands for a secret in an answer.
pub const MASK: &str = "********";

/// The runs going on, by project id.
#[derive(Default)]
pub struct Active {
    runs: Mutex<HashMap<String, Current>>,
    /// Projects being started (two starts at once must not launch two runs).
    starting: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active").finish_non_exhaustive()
    }
}

/// A project's latest run in this server's life.
#[derive(Clone)]
pub struct Current {
    /// The run.
    pub handle: RunHandle,
    /// Its id in the store's history.
    pub run_id: String,
    /// Who stopped it, once someone did.
    pub stopped_by: Arc<Mutex<Option<String>>>,
}

impl Active {
    /// A project's latest run in this server's life.
    pub fn get(&self, id: &str) -> Option<Current> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Current>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve a project's start; false when it is starting already.
    fn reserve(&self, id: &str) -> bool {
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string())
    }

    fn release(&self, id: &str) {
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Every run going on.
    pub fn all(&self) -> Vec<Current> {
        self.lock().values().cloned().collect()
    }
}

/// `scheme://user:password@host` -> `scheme://user:********@host`, in every endpoint field.
pub(crate) fn mask_url(url: &str) -> String {
    match secret_span(url) {
        Some((a, b)) => format!("{}{MASK}{}", &url[..a], &url[b..]),
        None => url.to_string(),
    }
}

/// Where the password of `scheme://user:password@host...` is.
fn secret_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let at = start + url[start..].find('@')?;
    let colon = start + url[start..at].find(':')?;
    Some((colon + 1, at))
}

/// A spec with its secrets masked.
pub fn masked(spec: &ProjectSpec) -> ProjectSpec {
    let mut s = spec.clone();
    for f in [
        &mut s.source,
        &mut s.sink,
        &mut s.dead_letter,
        &mut s.broker,
    ] {
        if let Some(v) = f.as_mut() {
            *v = mask_url(v);
        }
    }
    s
}

/// Put the stored secrets back where `new` says `********` for the same field.
fn unmask(new: &mut ProjectSpec, old: &ProjectSpec) {
    let pairs = [
        (&mut new.source, &old.source),
        (&mut new.sink, &old.sink),
        (&mut new.dead_letter, &old.dead_letter),
        (&mut new.broker, &old.broker),
    ];
    for (n, o) in pairs {
        let (Some(nv), Some(ov)) = (n.as_mut(), o.as_ref()) else {
            continue;
        };
        if let (Some((a, b)), Some((c, d))) = (secret_span(nv), secret_span(ov)) {
            if &nv[a..b] == MASK {
                *nv = format!("{}{}{}", &nv[..a], &ov[c..d], &nv[b..]);
            }
        }
    }
}

fn invalid(e: SpecError) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: e.to_string(),
    }
}

/// The 422 answer naming every wrong field.
pub(crate) fn invalid_response(e: SpecError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(Invalid {
            errors: e.errors.into_iter().map(FieldErrorView::from).collect(),
        }),
    )
        .into_response()
}

/// A spec from a request's body (JSON or TOML).
pub(crate) fn parse_body(
    body: &Bytes,
    parse: fn(&str) -> Result<ProjectSpec, SpecError>,
) -> Result<ProjectSpec, SpecError> {
    std::str::from_utf8(body)
        .map_err(|_| SpecError::field("project", "the body is not UTF-8"))
        .and_then(parse)
}

/// A spec from a request: JSON, checked field by field, with a name.
pub(crate) fn checked(
    spec: ProjectSpec,
    files_root: Option<&std::path::Path>,
) -> Result<ProjectSpec, SpecError> {
    let mut errors = match spec.resolve() {
        Ok(plan) => match files_root {
            // an operator may not make the server read or write files outside its files
            // directory (it would be a way to overwrite the server's own files)
            Some(root) => [
                ("source", &plan.source),
                ("sink", &plan.sink),
                ("dead_letter", &plan.dead_letter),
            ]
            .into_iter()
            .filter_map(|(field, ep)| {
                let path = ep.file()?;
                let inside = path.is_absolute()
                    && path.starts_with(root)
                    && !path
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                (!inside).then(|| streamprep_project::FieldError {
                    field: field.into(),
                    message: format!(
                        "{}: the server reads and writes files under {} only (an absolute path there)",
                        path.display(),
                        root.display()
                    ),
                })
            })
            .collect(),
            None => Vec::new(),
        },
        Err(e) => e.errors,
    };
    match spec.name.as_deref().map(str::trim) {
        None | Some("") => errors.insert(
            0,
            streamprep_project::FieldError {
                field: "name".into(),
                message: "missing: a project in the app has a name".into(),
            },
        ),
        Some(n) if n.len() > 200 => errors.insert(
            0,
            streamprep_project::FieldError {
                field: "name".into(),
                message: "at most 200 bytes".into(),
            },
        ),
        _ => {}
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecError { errors })
    }
}

/// A project as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its spec (secrets masked).
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Its latest run's state in this server's life (`idle` when none).
    pub state: String,
    /// Started again when the server starts.
    pub running: bool,
}

fn view(row: &ProjectRow, active: &Active) -> Result<ProjectView, ApiError> {
    let spec = ProjectSpec::from_json(&row.spec_json).map_err(invalid)?;
    Ok(ProjectView {
        id: row.id.clone(),
        name: row.name.clone(),
        spec: serde_json::to_value(masked(&spec)).unwrap_or_default(),
        state: active
            .get(&row.id)
            .map_or("idle".to_string(), |c| c.handle.state().to_string()),
        running: row.running,
    })
}

/// Every project, with its state.
#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = [ProjectView]), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    let rows = state.store.projects().await?;
    Ok(Json(
        rows.iter()
            .map(|r| view(r, &state.active))
            .collect::<Result<_, _>>()?,
    ))
}

/// Check and keep a spec: a new project (`id` none) or a new spec for project `id` (its
/// masked secrets filled in from the stored spec). The inner error names every wrong field;
/// a name another project has is a 409.
pub async fn save(
    state: &AppState,
    user: &str,
    id: Option<&str>,
    mut spec: ProjectSpec,
) -> Result<Result<String, SpecError>, ApiError> {
    if let Some(id) = id {
        let old = state.store.project(id).await?;
        if let Ok(old_spec) = ProjectSpec::from_json(&old.spec_json) {
            unmask(&mut spec, &old_spec);
        }
    }
    let spec = match checked(spec, state.files_root.as_deref()) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let name = spec.name.clone().unwrap_or_default();
    let action = if id.is_some() {
        "project.edit"
    } else {
        "project.add"
    };
    let id = state.store.put_project(id, &name, &spec.to_json()).await?;
    state.store.audit(user, action, &id, &name).await?;
    Ok(Ok(id))
}

async fn create_from(
    state: &AppState,
    user: &str,
    spec: ProjectSpec,
) -> Result<Response, ApiError> {
    let id = match save(state, user, None, spec).await? {
        Ok(id) => id,
        Err(e) => return Ok(invalid_response(e)),
    };
    let row = state.store.project(&id).await?;
    Ok((StatusCode::CREATED, Json(view(&row, &state.active)?)).into_response())
}

/// Add a project (its spec as JSON: the fields of a project file, with a name).
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    request_body(content = Object, description = "a project spec: the fields of a project file, as JSON", content_type = "application/json"),
    responses((status = 201, body = ProjectView), (status = 409), (status = 422, body = Invalid), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"))
)]
pub async fn create(
    State(state): State<AppState>,
    Operator(auth): Operator,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec = match parse_body(&body, ProjectSpec::from_json) {
        Ok(s) => s,
        Err(e) => return Ok(invalid_response(e)),
    };
    create_from(&state, &auth.user.name, spec).await
}

/// Add a project from the CLI's TOML project file.
#[utoipa::path(
    post,
    path = "/api/v1/projects/import",
    request_body(content = String, description = "a project file (TOML)", content_type = "text/plain"),
    responses((status = 201, body = ProjectView), (status = 409), (status = 422, body = Invalid), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"))
)]
pub async fn import(
    State(state): State<AppState>,
    Operator(auth): Operator,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec = match parse_body(&body, ProjectSpec::from_toml) {
        Ok(s) => s,
        Err(e) => return Ok(invalid_response(e)),
    };
    create_from(&state, &auth.user.name, spec).await
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", params(("id" = String, Path)), responses((status = 200, body = ProjectView), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let row = state.store.project(&id).await?;
    Ok(Json(view(&row, &state.active)?))
}

/// A project as the CLI's project file (TOML; secrets masked).
#[utoipa::path(get, path = "/api/v1/projects/{id}/export", params(("id" = String, Path)), responses((status = 200, content_type = "application/toml", body = String), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn export(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = state.store.project(&id).await?;
    let spec = ProjectSpec::from_json(&row.spec_json).map_err(invalid)?;
    Ok((
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        masked(&spec).to_toml(),
    )
        .into_response())
}

/// Replace a project's spec (a running project takes it at its next start).
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}",
    params(("id" = String, Path)),
    request_body(content = Object, description = "a project spec, as JSON", content_type = "application/json"),
    responses((status = 200, body = ProjectView), (status = 404), (status = 409), (status = 422, body = Invalid), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"))
)]
pub async fn update(
    State(state): State<AppState>,
    Operator(auth): Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.store.project(&id).await?;
    let spec = match parse_body(&body, ProjectSpec::from_json) {
        Ok(s) => s,
        Err(e) => return Ok(invalid_response(e)),
    };
    if let Err(e) = save(&state, &auth.user.name, Some(&id), spec).await? {
        return Ok(invalid_response(e));
    }
    let row = state.store.project(&id).await?;
    Ok(Json(view(&row, &state.active)?).into_response())
}

/// Remove a project (not while it runs).
#[utoipa::path(delete, path = "/api/v1/projects/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404), (status = 409), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn delete(
    State(state): State<AppState>,
    Operator(auth): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    delete_project(&state, &id, &auth.user.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Remove a project and its history (not while it runs).
pub async fn delete_project(state: &AppState, id: &str, by: &str) -> Result<(), ApiError> {
    if state
        .active
        .get(id)
        .is_some_and(|c| !c.handle.state().is_over())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the project is running: stop it first",
        ));
    }
    state.store.delete_project(id).await?;
    state.active.lock().remove(id);
    state.store.audit(by, "project.del", id, "").await?;
    Ok(())
}

/// A run started or stopped.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    /// The run's id in the history.
    pub run: String,
    /// Its state now.
    pub state: String,
}

/// Start a project: its spec checked (output files too), then launched on threads of its own.
/// Two starts of one project at once: the second gets 409.
pub async fn start_project(state: &AppState, id: &str, by: &str) -> Result<RunStarted, ApiError> {
    if !state.active.reserve(id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the project is starting already",
        ));
    }
    let r = start_reserved(state, id, by).await;
    state.active.release(id);
    r
}

async fn start_reserved(state: &AppState, id: &str, by: &str) -> Result<RunStarted, ApiError> {
    if state
        .active
        .get(id)
        .is_some_and(|c| !c.handle.state().is_over())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the project is running already",
        ));
    }
    let row = state.store.project(id).await?;
    let spec = ProjectSpec::from_json(&row.spec_json).map_err(invalid)?;
    // plan() tries the output files: off the async threads
    let mut plan = tokio::task::spawn_blocking(move || spec.plan())
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the check stopped"))?
        .map_err(invalid)?;
    // the steps' per-key state lives in the store from run to run (unless the project names
    // a file of its own)
    let state_slot = if plan.keeps_state && !plan.state_named {
        let saved = state.store.project_state(id).await?;
        let slot = Arc::new(Mutex::new(saved));
        plan.state_file = None;
        plan.config.state = Some(slot.clone());
        Some(slot)
    } else {
        None
    };
    let handle = streamprep_project::launch_plan(plan).map_err(invalid)?;
    let run_id = state.store.start_run(id, by).await?;
    state.store.set_running(id, true).await?;
    let current = Current {
        handle: handle.clone(),
        run_id: run_id.clone(),
        stopped_by: Arc::new(Mutex::new(None)),
    };
    state.active.lock().insert(id.to_string(), current.clone());
    // the end of the run is recorded by a task that waits for it off the async threads
    let (st, pid) = (state.clone(), id.to_string());
    tokio::spawn(async move {
        let h = current.handle.clone();
        let result = tokio::task::spawn_blocking(move || h.wait()).await;
        let (end, summary) = match result {
            Ok(Ok(s)) => ("finished".to_string(), serde_json::to_string(&s).ok()),
            Ok(Err(reason)) => (format!("failed: {reason}"), None),
            Err(_) => ("failed: the run's thread stopped".to_string(), None),
        };
        let by = current
            .stopped_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let shutting_down = st.shutting_down.load(std::sync::atomic::Ordering::SeqCst);
        let end = if shutting_down && by.is_none() {
            "interrupted (the server stopped; started again at its next start)".to_string()
        } else {
            end
        };
        let _ = st
            .store
            .end_run(&current.run_id, &end, summary.as_deref(), by.as_deref())
            .await;
        let saved = state_slot.and_then(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(bytes) = saved {
            if let Err(e) = st.store.save_project_state(&pid, &bytes).await {
                tracing::warn!("project {pid}: the steps' state could not be kept: {e}");
            }
        }
        if !shutting_down {
            let _ = st.store.set_running(&pid, false).await;
        }
    });
    state.store.audit(by, "project.start", id, &run_id).await?;
    Ok(RunStarted {
        run: run_id,
        state: handle.state().to_string(),
    })
}

/// Start a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/start", params(("id" = String, Path)), responses((status = 202, body = RunStarted), (status = 404), (status = 409), (status = 422), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn start(
    State(state): State<AppState>,
    Operator(auth): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let started = start_project(&state, &id, &auth.user.name).await?;
    Ok((StatusCode::ACCEPTED, Json(started)).into_response())
}

/// Stop a project: no more is read, what was read is processed and flushed.
#[utoipa::path(post, path = "/api/v1/projects/{id}/stop", params(("id" = String, Path)), responses((status = 202, body = RunStarted), (status = 404), (status = 409), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn stop(
    State(state): State<AppState>,
    Operator(auth): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stopped = stop_project(&state, &id, &auth.user.name).await?;
    Ok((StatusCode::ACCEPTED, Json(stopped)).into_response())
}

/// Stop a project's run: no more is read, what was read is processed and flushed.
pub async fn stop_project(state: &AppState, id: &str, by: &str) -> Result<RunStarted, ApiError> {
    state.store.project(id).await?;
    let Some(c) = state.active.get(id).filter(|c| !c.handle.state().is_over()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the project is not running",
        ));
    };
    *c.stopped_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(by.to_string());
    c.handle.stop();
    state.store.set_running(id, false).await?;
    state.store.audit(by, "project.stop", id, &c.run_id).await?;
    Ok(RunStarted {
        run: c.run_id.clone(),
        state: c.handle.state().to_string(),
    })
}

/// A project's latest run in this server's life.
async fn latest_run(state: &AppState, id: &str) -> Result<Current, ApiError> {
    state.store.project(id).await?;
    state.active.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the project has not run since the server started",
        )
    })
}

/// The live view of a project's latest run (counts, rates, rho, service times, latency,
/// backlog, links, buffer, state).
#[utoipa::path(get, path = "/api/v1/projects/{id}/view", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn live(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = latest_run(&state, &id).await?;
    Ok(Json(c.handle.view()).into_response())
}

/// The live view of a project's run as Server-Sent Events: `view` once a second (the same
/// JSON as `/view`), `idle` while it has not run since the server started; the stream ends
/// a second after the run does.
#[utoipa::path(get, path = "/api/v1/projects/{id}/view/stream", params(("id" = String, Path)), responses((status = 200, content_type = "text/event-stream", body = String), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn live_stream(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    state.store.project(&id).await?;
    let active = state.active.clone();
    let closing = state.shutting_down.clone();
    // (active, project, first event, the run was over at the last event)
    let stream = futures_util::stream::unfold(
        (active, id, true, false),
        move |(active, id, first, ended)| {
            let closing = closing.clone();
            async move {
                if ended || closing.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                if !first {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                let (event, over) = match active.get(&id) {
                    Some(c) => {
                        let v = c.handle.view();
                        let over = v.state.is_over();
                        (Event::default().event("view").json_data(v).ok()?, over)
                    }
                    None => (Event::default().event("idle").data("{}"), false),
                };
                Some((
                    Ok::<_, std::convert::Infallible>(event),
                    (active, id, false, over),
                ))
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A listener of a run's sampled rows; leaves the tap when dropped (the client went away).
struct Listening(RunHandle);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.tap().leave();
    }
}

/// The processed rows of a project's run as Server-Sent Events for live charts: once a second
/// a `rows` event with the rows sampled since the last (at most 100 a second, so a browser is
/// never flooded; NDJSON output only); the stream ends with the run.
#[utoipa::path(get, path = "/api/v1/projects/{id}/rows/stream", params(("id" = String, Path)), responses((status = 200, content_type = "text/event-stream", body = String), (status = 401, description = "not logged in"), (status = 403, description = "not allowed"), (status = 404, description = "no such project, or it has not run")))]
pub async fn rows_stream(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let c = latest_run(&state, &id).await?;
    c.handle.tap().join();
    let from = c.handle.tap().since(u64::MAX).1;
    let closing = state.shutting_down.clone();
    let stream = futures_util::stream::unfold(
        (Listening(c.handle.clone()), from, false),
        move |(listening, from, ended)| {
            let closing = closing.clone();
            async move {
                if ended || closing.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let (rows, next) = listening.0.tap().since(from);
                let over = listening.0.state().is_over();
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(&r.row).ok())
                    .collect();
                let event = Event::default().event("rows").json_data(rows).ok()?;
                Some((
                    Ok::<_, std::convert::Infallible>(event),
                    (listening, next, over),
                ))
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The last dead letters of a project's run (at most 50; reasons, not data), oldest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/dead-letters", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn dead_letters(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = latest_run(&state, &id).await?;
    Ok(Json(c.handle.dead_letters()).into_response())
}

/// A project's runs, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs", params(("id" = String, Path)), responses((status = 200, body = [RunRow]), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn history(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    state.store.project(&id).await?;
    Ok(Json(state.store.runs(&id).await?))
}

/// Start again every project that was running when the server stopped.
pub async fn restart_all(state: &AppState) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for row in state.store.projects().await.unwrap_or_default() {
        if row.running {
            let r = start_project(state, &row.id, "streamprep")
                .await
                .map(|s| s.run)
                .map_err(|e| e.message);
            out.push((row.name.clone(), r));
        }
    }
    out
}

/// Stop every run (the server is stopping): each drains, flushes and acknowledges; their
/// projects stay marked running, to start again at the next start.
pub async fn stop_all(state: &AppState) {
    state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = state.active.all();
    for c in &runs {
        c.handle.stop();
    }
    for c in runs {
        let h = c.handle.clone();
        let _ =
            tokio::task::spawn_blocking(move || h.wait_timeout(std::time::Duration::from_secs(30)))
                .await;
    }
    // let the tasks that record the ends write them
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{Role, Store};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    pub(crate) async fn setup() -> (AppState, String, String) {
        let store = Store::memory().await.expect("store");
        let op = store
            .add_user("op", Role::Operator, "a long enough password")
            .await
            .expect("op");
        let viewer = store
            .add_user("v", Role::Viewer, "a long enough password")
            .await
            .expect("v");
        let t = store.create_token(&op, "t", 0).await.expect("token");
        let tv = store.create_token(&viewer, "t", 0).await.expect("token");
        (AppState::new(store), t, tv)
    }

    pub(crate) async fn call(
        state: &AppState,
        token: &str,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, String) {
        let r = crate::api::router(state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("request"),
            )
            .await
            .expect("answer");
        let status = r.status();
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn json(t: &str) -> serde_json::Value {
        serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}"))
    }

    async fn wait_state(state: &AppState, token: &str, id: &str, want: &str) -> serde_json::Value {
        for _ in 0..200 {
            let (_, body) = call(state, token, "GET", &format!("/api/v1/projects/{id}"), "").await;
            let v = json(&body);
            if v["state"].as_str().is_some_and(|s| s.starts_with(want)) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{id} never became {want}");
    }

    /// About forty cross-site scripting payloads, as OWASP's cheat sheet writes them.
    const XSS: &[&str] = &[
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<svg onload=alert(1)>",
        "\"><script>alert(1)</script>",
        "'><script>alert(1)</script>",
        "javascript:alert(1)",
        "<iframe src=javascript:alert(1)>",
        "<body onload=alert(1)>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<div style=\"background:url(javascript:alert(1))\">",
        "<input autofocus onfocus=alert(1)>",
        "<details open ontoggle=alert(1)>",
        "<math><mtext></mtext><script>alert(1)</script></math>",
        "<object data=javascript:alert(1)>",
        "<embed src=javascript:alert(1)>",
        "<link rel=stylesheet href=javascript:alert(1)>",
        "<meta http-equiv=refresh content=0;url=javascript:alert(1)>",
        "<table background=javascript:alert(1)>",
        "<video><source onerror=alert(1)>",
        "<audio src=x onerror=alert(1)>",
        "<marquee onstart=alert(1)>",
        "<isindex action=javascript:alert(1) type=image>",
        "<form action=javascript:alert(1)><input type=submit>",
        "<button formaction=javascript:alert(1)>x</button>",
        "<select autofocus onfocus=alert(1)>",
        "<textarea autofocus onfocus=alert(1)>",
        "<keygen autofocus onfocus=alert(1)>",
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
        "%3Cscript%3Ealert(1)%3C/script%3E",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
        "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        "<IMG SRC=\"jav&#x09;ascript:alert(1);\">",
        "<svg><script>alert&#40;1&#41;</script>",
        "{{constructor.constructor('alert(1)')()}}",
        "${alert(1)}",
        "<style>@import 'javascript:alert(1)';</style>",
        "<base href=javascript:alert(1)//>",
        "\u{2028}\u{2029}<script>alert(1)</script>",
        "</script><script>alert(1)</script>",
    ];

    #[test]
    fn secrets_are_masked_and_kept_when_sent_back_masked() {
        assert_eq!(
            mask_url("mqtt://bob:s3cret@host:1883/t"),
            "mqtt://bob:********@host:1883/t"
        );
        assert_eq!(mask_url("redis://:pw@h:6379"), "redis://:********@h:6379");
        assert_eq!(mask_url("mqtt://host:1883/t"), "mqtt://host:1883/t");
        assert_eq!(mask_url("file:a@b:c.ndjson"), "file:a@b:c.ndjson");
        let old = ProjectSpec {
            source: Some("mqtt://bob:s3cret@host:1883/t".into()),
            ..Default::default()
        };
        let mut new = masked(&old);
        assert!(!serde_json::to_string(&new)
            .expect("json")
            .contains("s3cret"));
        unmask(&mut new, &old);
        assert_eq!(new.source, old.source);
        let mut changed = ProjectSpec {
            source: Some("mqtt://bob:n3w@host:1883/t".into()),
            ..Default::default()
        };
        unmask(&mut changed, &old);
        assert_eq!(
            changed.source.as_deref(),
            Some("mqtt://bob:n3w@host:1883/t")
        );
    }

    #[tokio::test]
    async fn projects_are_created_checked_exported_imported_and_deleted() {
        let (state, t, tv) = setup().await;
        let dir = tempfile::tempdir().expect("tmp");
        let spec = format!(
            r#"{{"name": "weather", "description": "the paper's chain",
                "source": "mqtt://bob:s3cret@127.0.0.1:1/wetter?qos=1",
                "chain": ["fillna_zeros", {{"step": "min_max_scaler", "feature_range": [-1, 1]}}],
                "buffer": 100, "method": "pool", "workers": 2,
                "sink": "file:{}/out.ndjson"}}"#,
            dir.path().display()
        );
        let (s, body) = call(&state, &t, "POST", "/api/v1/projects", &spec).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let p = json(&body);
        let id = p["id"].as_str().expect("id").to_string();
        assert_eq!(p["state"], "idle");
        assert!(!body.contains("s3cret"), "secrets are write-only: {body}");
        // a viewer reads but does not write
        let (s, _) = call(&state, &tv, "GET", "/api/v1/projects", "").await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(&state, &tv, "POST", "/api/v1/projects", &spec).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // the same name twice
        let (s, _) = call(&state, &t, "POST", "/api/v1/projects", &spec).await;
        assert_eq!(s, StatusCode::CONFLICT);
        // sent back masked, the secret is kept; export and import round trip
        let (s, body) = call(
            &state,
            &t,
            "PUT",
            &format!("/api/v1/projects/{id}"),
            &serde_json::to_string(&p["spec"]).expect("json"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let stored = state.store.project(&id).await.expect("row");
        assert!(stored.spec_json.contains("s3cret"), "kept in the store");
        let (s, toml) = call(
            &state,
            &t,
            "GET",
            &format!("/api/v1/projects/{id}/export"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            toml.contains("step = \"min_max_scaler\"") && !toml.contains("s3cret"),
            "{toml}"
        );
        let renamed = toml.replace("name = \"weather\"", "name = \"weather 2\"");
        let (s, body) = call(&state, &t, "POST", "/api/v1/projects/import", &renamed).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let imported = json(&body);
        let mut a = p["spec"].clone();
        a["name"] = "weather 2".into();
        assert_eq!(imported["spec"], a, "TOML round trip exact");
        // every wrong field named
        let (s, body) = call(&state, &t, "POST", "/api/v1/projects", r#"{"buffer": 0}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("buffer"), "{body}");
        let (s, body) = call(
            &state,
            &t,
            "POST",
            "/api/v1/projects",
            r#"{"source": "-", "sink": "-", "chain": "abs", "buffer": 1}"#,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&body)["errors"][0]["field"], "name");
        let (s, _) = call(&state, &t, "DELETE", &format!("/api/v1/projects/{id}"), "").await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call(&state, &t, "GET", &format!("/api/v1/projects/{id}"), "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn files_stay_under_the_servers_files_directory() {
        let (mut state, t, _) = setup().await;
        let root = tempfile::tempdir().expect("tmp");
        state.files_root = Some(root.path().to_path_buf());
        let with_sink = |sink: String| {
            serde_json::json!({
                "name": sink.clone(), "source": "generator:davis?rows=10", "chain": ["abs"],
                "buffer": 10, "sink": sink, "sink_format": "ndjson"
            })
            .to_string()
        };
        let inside = format!("file:{}/out.ndjson", root.path().display());
        let (s, body) = call(&state, &t, "POST", "/api/v1/projects", &with_sink(inside)).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        for outside in [
            "file:/etc/streamprep-test.ndjson".to_string(),
            "file:relative.ndjson".to_string(),
            format!("file:{}/../escape.ndjson", root.path().display()),
        ] {
            let (s, body) = call(
                &state,
                &t,
                "POST",
                "/api/v1/projects",
                &with_sink(outside.clone()),
            )
            .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{outside}: {body}");
            assert!(
                body.contains("\"field\":\"sink\"") && body.contains("files under"),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn xss_payloads_are_kept_exactly_in_text_and_refused_where_there_is_syntax() {
        let (state, t, _) = setup().await;
        for (i, x) in XSS.iter().enumerate() {
            let spec = serde_json::json!({
                "name": format!("{x} {i}"), "description": x,
                "source": "generator:davis?rows=10", "chain": ["abs"], "buffer": 10,
                "sink": "file:/dev/null", "sink_format": "ndjson"
            });
            let (s, body) = call(&state, &t, "POST", "/api/v1/projects", &spec.to_string()).await;
            assert_eq!(s, StatusCode::CREATED, "{x}: {body}");
            let v = json(&body);
            assert_eq!(v["name"], format!("{x} {i}"));
            assert_eq!(v["spec"]["description"], *x);
            for (field, value) in [
                ("source", serde_json::json!(x)),
                ("sink", serde_json::json!(x)),
                ("chain", serde_json::json!([x])),
                ("buffer", serde_json::json!(x)),
                ("max_wait", serde_json::json!(x)),
            ] {
                let mut bad = spec.clone();
                bad["name"] = format!("bad {i}").into();
                bad[field] = value;
                // a path may hold `%3C...` or `${...}`: an endpoint refuses markup, quotes and
                // control characters, and what is no address of a known kind
                let markup = x.chars().any(|c| "<>\"'`".contains(c) || c.is_control());
                if matches!(field, "source" | "sink") && !markup && !x.contains(':') {
                    continue;
                }
                let (s, body) =
                    call(&state, &t, "POST", "/api/v1/projects", &bad.to_string()).await;
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field} = {x}: {body}");
                assert!(body.contains(field), "{field} = {x}: {body}");
            }
        }
    }

    /// A keyed project's running statistics go on from run to run: the state is kept in the
    /// store when a run ends and taken back at the next start, so a second run over the same
    /// rows gives what the second half of one run over them twice gives.
    #[tokio::test]
    async fn a_keyed_projects_state_is_kept_in_the_store_between_runs() {
        let (state, t, _) = setup().await;
        let dir = tempfile::tempdir().expect("tmp");
        let rows: String = (0..60)
            .map(|i| format!("{{\"k\": \"s{}\", \"x\": {}}}\n", i % 3, (i * 7) % 11))
            .collect();
        std::fs::write(dir.path().join("in.ndjson"), &rows).expect("input");
        std::fs::write(dir.path().join("twice.ndjson"), rows.repeat(2)).expect("input");
        let spec = |input: &str, out: &str| {
            serde_json::json!({
                "name": format!("keyed {out}"), "source": format!("file:{}/{input}", dir.path().display()),
                "chain": [{"step": "standard_scaler", "fit": "running"}, {"step": "diff"}],
                "key": "k", "buffer": 4, "sink": format!("file:{}/{out}", dir.path().display()),
            })
        };
        let (s, body) = call(
            &state,
            &t,
            "POST",
            "/api/v1/projects",
            &spec("in.ndjson", "out.ndjson").to_string(),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let id = json(&body)["id"].as_str().expect("id").to_string();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("output");
        let mut outputs = Vec::new();
        for run in 0..2 {
            let (s, body) = call(
                &state,
                &t,
                "POST",
                &format!("/api/v1/projects/{id}/start"),
                "",
            )
            .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{body}");
            wait_state(&state, &t, &id, "finished").await;
            // the task that records the end keeps the state
            for _ in 0..200 {
                if state
                    .store
                    .project_state(&id)
                    .await
                    .expect("store")
                    .is_some()
                    && run == 0
                {
                    break;
                }
                if run == 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            assert!(state
                .store
                .project_state(&id)
                .await
                .expect("store")
                .is_some());
            outputs.push(read("out.ndjson"));
        }
        assert_ne!(
            outputs[0], outputs[1],
            "the second run went on from the first"
        );
        // one run over the rows twice: its second half is the second run's output, key by key
        let one = streamprep_project::ProjectSpec::from_json(
            &spec("twice.ndjson", "twice.out.ndjson").to_string(),
        )
        .expect("spec");
        let handle = streamprep_project::launch(&one).expect("launch");
        tokio::task::spawn_blocking(move || handle.wait())
            .await
            .expect("join")
            .expect("runs");
        let per_key = |text: &str| {
            let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("row");
                m.entry(v["k"].to_string()).or_default().push(l.to_string());
            }
            m
        };
        let (whole, first, second) = (
            per_key(&read("twice.out.ndjson")),
            per_key(&outputs[0]),
            per_key(&outputs[1]),
        );
        for (k, rows) in &whole {
            let mut both = first[k].clone();
            both.extend(second[k].iter().cloned());
            assert_eq!(&both, rows, "key {k}");
        }
    }

    #[tokio::test]
    async fn start_stop_history_view_and_restart_with_the_server() {
        let (state, t, _) = setup().await;
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out.ndjson");
        let spec = serde_json::json!({
            "name": "paced", "source": "generator:davis?rate=500", "chain": ["fillna_zeros", "abs"],
            "buffer": 10, "sink": format!("file:{}", out.display()),
            "dead_letter": format!("file:{}/dead.ndjson", dir.path().display())
        });
        let (_, body) = call(&state, &t, "POST", "/api/v1/projects", &spec.to_string()).await;
        let id = json(&body)["id"].as_str().expect("id").to_string();
        let (s, _) = call(
            &state,
            &t,
            "POST",
            &format!("/api/v1/projects/{id}/stop"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "not running");
        // two starts at once: one run
        let uri = format!("/api/v1/projects/{id}/start");
        let (a, b) = tokio::join!(
            call(&state, &t, "POST", &uri, ""),
            call(&state, &t, "POST", &uri, "")
        );
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(
            codes,
            [StatusCode::ACCEPTED, StatusCode::CONFLICT],
            "{a:?} {b:?}"
        );
        wait_state(&state, &t, &id, "running").await;
        let (s, _) = call(
            &state,
            &t,
            "POST",
            &format!("/api/v1/projects/{id}/start"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "running already");
        let (s, _) = call(&state, &t, "DELETE", &format!("/api/v1/projects/{id}"), "").await;
        assert_eq!(s, StatusCode::CONFLICT, "not while running");
        tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
        let (s, body) = call(
            &state,
            &t,
            "GET",
            &format!("/api/v1/projects/{id}/view"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v = json(&body);
        assert!(v["counts"]["rows_read"].as_u64().expect("rows") > 0, "{v}");
        let (s, _) = call(
            &state,
            &t,
            "POST",
            &format!("/api/v1/projects/{id}/stop"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        wait_state(&state, &t, &id, "finished").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (_, body) = call(
            &state,
            &t,
            "GET",
            &format!("/api/v1/projects/{id}/runs"),
            "",
        )
        .await;
        let runs = json(&body);
        assert_eq!(runs[0]["state"], "finished", "{runs}");
        assert_eq!(runs[0]["started_by"], "op");
        assert_eq!(runs[0]["stopped_by"], "op");
        let summary = &runs[0]["summary"];
        assert_eq!(
            summary["rows_in"],
            summary["rows_out"].as_u64().expect("out")
                + summary["dead_letters"].as_u64().expect("dl"),
            "{summary}"
        );
        // running when the server stops: started again when it starts
        let (s, _) = call(
            &state,
            &t,
            "POST",
            &format!("/api/v1/projects/{id}/start"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        wait_state(&state, &t, &id, "running").await;
        stop_all(&state).await;
        assert!(state.store.project(&id).await.expect("row").running);
        let (_, body) = call(
            &state,
            &t,
            "GET",
            &format!("/api/v1/projects/{id}/runs"),
            "",
        )
        .await;
        assert!(
            json(&body)[0]["state"]
                .as_str()
                .expect("state")
                .starts_with("interrupted"),
            "{body}"
        );
        let again = AppState::new(state.store.clone());
        let restarted = restart_all(&again).await;
        assert_eq!(restarted.len(), 1);
        assert!(restarted[0].1.is_ok(), "{restarted:?}");
        wait_state(&again, &t, &id, "running").await;
        stop_all(&again).await;
    }
}

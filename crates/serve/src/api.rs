//! The JSON API under `/api/v1`, its OpenAPI document, `/healthz` and `/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use streamprep_project::{FieldError, ProjectSpec, Runs};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{
    same_site, Admin, ApiError, Auth, Clock, JsonBody, Operator, Throttle, Via, COOKIE,
};
use crate::store::Role;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Users, sessions, projects, runs, the audit log.
    pub store: crate::store::Store,
    /// The time (tests inject one to test session timeouts).
    pub clock: Clock,
    /// Failed logins.
    pub throttle: Arc<Throttle>,
    /// The runs going on, by project.
    pub active: Arc<crate::projects::Active>,
    /// Set while the server stops (the runs it stops start again at its next start).
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// Mark the session cookie `Secure` (the server is reached over HTTPS, through a proxy
    /// that terminates TLS).
    pub secure_cookies: bool,
    /// Projects read and write files under this directory only (`None`: anywhere; the
    /// `serve` command always sets one).
    pub files_root: Option<std::path::PathBuf>,
    /// History jobs: queries of a table's time range, decimated, shared by who asks the same.
    pub history: Arc<crate::history::Jobs>,
}

impl AppState {
    /// A server's state on `store`.
    pub fn new(store: crate::store::Store) -> Self {
        AppState {
            store,
            clock: Arc::new(crate::store::now_ms),
            throttle: Arc::new(Throttle::default()),
            active: Arc::new(crate::projects::Active::default()),
            shutting_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            secure_cookies: false,
            files_root: None,
            history: Arc::new(crate::history::Jobs::default()),
        }
    }
}

/// The largest request body taken (413 above).
pub const MAX_BODY: usize = 1 << 20;

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "streamprep",
    description = "Real-time preprocessing of streaming sensor data: the Preprocessing App's API"
))]
struct ApiDoc;

/// The server's routes, with the OpenAPI document of them at `/api/openapi.json`.
pub fn router(state: AppState) -> Router {
    let pages = crate::pages::routes().with_state(state.clone());
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(steps))
        .routes(routes!(connectors))
        .routes(routes!(validate))
        .routes(routes!(metrics))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_token))
        .routes(routes!(list_users, add_user))
        .routes(routes!(delete_user))
        .routes(routes!(audit))
        .routes(routes!(plan))
        .routes(routes!(list_profiles, add_profile))
        .routes(routes!(crate::projects::list, crate::projects::create))
        .routes(routes!(crate::projects::import))
        .routes(routes!(
            crate::projects::get,
            crate::projects::update,
            crate::projects::delete
        ))
        .routes(routes!(crate::projects::export))
        .routes(routes!(crate::projects::start))
        .routes(routes!(crate::projects::stop))
        .routes(routes!(crate::projects::live))
        .routes(routes!(crate::projects::live_stream))
        .routes(routes!(crate::projects::dead_letters))
        .routes(routes!(crate::projects::rows_stream))
        .routes(routes!(crate::projects::history))
        .routes(routes!(crate::history::start_job))
        .routes(routes!(crate::history::get_job, crate::history::cancel_job))
        .with_state(state)
        .split_for_parts();
    let router = router.merge(pages).layer(DefaultBodyLimit::max(MAX_BODY));
    let doc = api.to_pretty_json().unwrap_or_default();
    router
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .route("/assets/{*path}", get(crate::assets::asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// The Content-Security-Policy of every answer: nothing but this origin's own files, no inline
/// script or style, no framing, forms only to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers every answer carries: the CSP, no MIME sniffing, no referrer to other sites (a form's
/// post keeps its `Origin`, which `no-referrer` would make `null`), no framing, and no
/// caching of what the API says (it may be private).
async fn security_headers(mut r: Response) -> Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The server is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// streamprep's version.
    pub version: String,
}

/// Is the server up?
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// One option of a step or a connector.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptionView {
    /// Its name.
    pub name: String,
    /// Its type as users read it (`[low, high]`, `integer >= 1`, `uniform | normal`).
    pub kind: String,
    /// Its default (JSON for a step's option), empty when it has none.
    pub default: String,
    /// What it does.
    pub doc: String,
}

/// A step of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Its name in a chain.
    pub name: String,
    /// What it does.
    pub summary: String,
    /// The pandas / scikit-learn expression it equals.
    pub equals: String,
    /// `prepare` and `result` open and close every chain; the others are transforms.
    pub boundary: bool,
    /// The scikit-learn class whose input check refuses infinities, if any.
    pub refuses_infinity: Option<String>,
    /// Its options.
    pub options: Vec<OptionView>,
    /// For the paper's names: the step and the options (JSON) it stands for.
    pub alias_of: Option<(String, String)>,
}

/// Every step, with its options.
#[utoipa::path(get, path = "/api/v1/steps", responses((status = 200, body = [StepView]), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn steps(auth: Auth) -> Result<Json<Vec<StepView>>, ApiError> {
    use streamprep_ops::registry::{StepKind, STEPS};
    auth.require(Role::Viewer)?;
    Ok(Json(
        STEPS
            .iter()
            .map(|s| StepView {
                name: s.name.into(),
                summary: s.summary.into(),
                equals: s.equals.into(),
                boundary: matches!(s.kind, StepKind::Boundary),
                refuses_infinity: s.refuses_infinity.map(Into::into),
                options: s
                    .options
                    .iter()
                    .map(|o| OptionView {
                        name: o.name.into(),
                        kind: o.kind.describe(),
                        default: o.default.into(),
                        doc: o.doc.into(),
                    })
                    .collect(),
                alias_of: s.alias_of.map(|(a, b)| (a.into(), b.into())),
            })
            .collect(),
    ))
}

/// A connector of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    /// Its scheme.
    pub scheme: String,
    /// How a spec of it reads.
    pub syntax: String,
    /// What it is.
    pub summary: String,
    /// Usable as a source.
    pub source: bool,
    /// Usable as a sink.
    pub sink: bool,
    /// Its options.
    pub options: Vec<OptionView>,
}

/// Every source and sink, with its options.
#[utoipa::path(get, path = "/api/v1/connectors", responses((status = 200, body = [ConnectorView]), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn connectors(auth: Auth) -> Result<Json<Vec<ConnectorView>>, ApiError> {
    use streamprep_connectors::registry::CONNECTORS;
    auth.require(Role::Viewer)?;
    Ok(Json(
        CONNECTORS
            .iter()
            .map(|c| ConnectorView {
                scheme: c.scheme.into(),
                syntax: c.syntax.into(),
                summary: c.summary.into(),
                source: c.source,
                sink: c.sink,
                options: c
                    .options
                    .iter()
                    .map(|o| OptionView {
                        name: o.name.into(),
                        kind: o.kind.into(),
                        default: o.default.into(),
                        doc: o.doc.into(),
                    })
                    .collect(),
            })
            .collect(),
    ))
}

/// A spec that can run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Valid {
    /// The project's name (or its source when it has none).
    pub name: String,
    /// The spec as it will be kept: defaults left out, a chain entry with options as a table.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// The planner's verdict at the spec's `arrival_rate`, with the profile named in the
    /// query: predicted rho and latency, and a warning when rho is high (>= 1: unstable).
    #[schema(value_type = Object)]
    pub verdict: Option<serde_json::Value>,
    /// Why there is no verdict, when there is none.
    pub verdict_note: Option<String>,
}

/// `?profile=NAME`: judge the spec with this stored profile.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct ValidateQuery {
    /// A stored profile's name (POST /api/v1/profiles).
    pub profile: Option<String>,
}

/// Why a spec cannot run: one entry per wrong field.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invalid {
    /// Each field found wrong, with what is wrong and what would be right.
    pub errors: Vec<FieldErrorView>,
}

/// One field's problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorView {
    /// The field, as a project names it (`buffer`, `chain`, `schema`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl From<FieldError> for FieldErrorView {
    fn from(e: FieldError) -> Self {
        FieldErrorView {
            field: e.field,
            message: e.message,
        }
    }
}

/// Check a project spec (JSON, the fields of a project file) without starting or creating
/// anything.
#[utoipa::path(
    post,
    path = "/api/v1/validate",
    params(ValidateQuery),
    request_body(content = Object, description = "a project spec: the fields of a project file, as JSON", content_type = "application/json"),
    responses(
        (status = 200, body = Valid, description = "the spec can run"),
        (status = 404, description = "no stored profile of that name"),
        (status = 422, body = Invalid, description = "the fields that are wrong"), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"))
)]
async fn validate(
    State(state): State<AppState>,
    _: Operator,
    axum::extract::Query(q): axum::extract::Query<ValidateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let checked = crate::projects::parse_body(&body, ProjectSpec::from_json)
        .and_then(|spec| spec.resolve().map(|plan| (spec, plan)));
    let (spec, plan) = match checked {
        Ok(ok) => ok,
        Err(e) => return Ok(crate::projects::invalid_response(e)),
    };
    let (verdict, verdict_note) = judge(&state, &spec, &plan, q.profile.as_deref()).await?;
    let verdict = verdict.and_then(|v| serde_json::to_value(v).ok());
    Ok((
        StatusCode::OK,
        Json(Valid {
            name: plan.name,
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            verdict,
            verdict_note,
        }),
    )
        .into_response())
}

/// The planner's verdict on a spec's setting at its `arrival_rate`, with a stored profile:
/// the verdict, or why there is none.
pub(crate) async fn judge(
    state: &AppState,
    spec: &ProjectSpec,
    plan: &streamprep_project::Plan,
    profile: Option<&str>,
) -> Result<(Option<streamprep_engine::planner::Verdict>, Option<String>), ApiError> {
    let (name, rate) = match (profile, spec.arrival_rate) {
        (None, _) => {
            return Ok((
                None,
                Some("name a stored profile for the planner's verdict".to_string()),
            ))
        }
        (Some(_), None) => {
            return Ok((
                None,
                Some("give arrival_rate (rows a second) for the planner's verdict".to_string()),
            ))
        }
        (Some(name), Some(rate)) => (name, rate),
    };
    let csv = state.store.profile(name).await?;
    let profile = streamprep_engine::planner::parse_profile(&csv)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("profile: {e}")))?;
    let setting = match plan.config.method {
        _ if plan.config.adaptive.is_some() => {
            Err("buffer = \"auto\" follows the load: the planner judges fixed buffers")
        }
        streamprep_engine::Method::Inline => Ok((1, "inline")),
        streamprep_engine::Method::Pool { workers } => Ok((workers, "pool")),
        streamprep_engine::Method::Queue { .. } => Err(
            "the queue method's workers are processes elsewhere: POST /api/v1/plan with their number",
        ),
    };
    Ok(match setting {
        Ok((workers, method)) => {
            let v = streamprep_engine::planner::verdict(
                &profile,
                rate,
                plan.config.buffer,
                workers,
                method,
            );
            let note = v.is_none().then(|| {
                format!("the profile {name:?} has no measurement for the {method} method")
            });
            (v, note)
        }
        Err(note) => (None, Some(note.to_string())),
    })
}

/// A profile to keep.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct NewProfile {
    /// Its name (1 to 200 bytes).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The CSV `streamprep profile` wrote.
    pub profile_csv: String,
}

/// Keep a profile by name for the planner (replacing one of that name).
#[utoipa::path(post, path = "/api/v1/profiles", request_body = NewProfile, responses((status = 201), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"), (status = 422, description = "not a profile")))]
async fn add_profile(
    State(state): State<AppState>,
    Operator(auth): Operator,
    JsonBody(p): JsonBody<NewProfile>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    if p.name.trim().is_empty() || p.name.len() > 200 {
        return Err(bad("name: 1 to 200 bytes".into()));
    }
    streamprep_engine::planner::parse_profile(&p.profile_csv)
        .map_err(|e| bad(format!("profile_csv: {e}")))?;
    state.store.put_profile(&p.name, &p.profile_csv).await?;
    state
        .store
        .audit(&auth.user.name, "profile.put", &p.name, "")
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// The stored profiles' names.
#[utoipa::path(get, path = "/api/v1/profiles", responses((status = 200, body = [String]), (status = 401, description = "not logged in"), (status = 403, description = "not allowed")))]
async fn list_profiles(
    State(state): State<AppState>,
    _: Auth,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(state.store.profiles().await?))
}

/// The runs' metrics in Prometheus' text format, labelled by pipeline.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain", body = String), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn metrics(auth: Auth, State(state): State<AppState>) -> Response {
    if let Err(e) = auth.require(Role::Viewer) {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            // the runs this server hosts are the projects' latest runs
            let runs = Runs::default();
            state
                .active
                .all()
                .into_iter()
                .for_each(|c| runs.add(c.handle));
            runs.prometheus()
        },
    )
        .into_response()
}

/// A name and a password.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct Credentials {
    /// The login name.
    pub name: String,
    /// The password.
    pub password: String,
}

/// Who is logged in, and the CSRF token to send with every request that changes something.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The user's name.
    pub name: String,
    /// The user's role: viewer, operator or admin.
    pub role: String,
    /// The session's CSRF token (header X-CSRF-Token); none for an API token.
    pub csrf: Option<String>,
}

fn wrong() -> ApiError {
    // the same answer for an unknown name and a wrong password
    ApiError::new(StatusCode::UNAUTHORIZED, "wrong name or password")
}

/// Log in: a new session (a new id at every login; the one sent, if any, ends), its id in an
/// `HttpOnly`, `SameSite=Strict` cookie, its CSRF token in the answer.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    request_body = Credentials,
    responses(
        (status = 200, body = Session),
        (status = 401, description = "wrong name or password"),
        (status = 403, description = "sent from another site"),
        (status = 422, description = "the body is not the JSON asked for"),
        (status = 429, description = "too many failed logins for this name: wait 15 minutes")
    )
)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let (user, id, csrf) = start_session(&state, &headers, &c.name, &c.password).await?;
    Ok((
        [(header::SET_COOKIE, session_cookie_header(&state, &id))],
        Json(Session {
            name: user.name,
            role: user.role.to_string(),
            csrf: Some(csrf),
        }),
    )
        .into_response())
}

/// Check a name and password (throttled per name; the same answer for an unknown name and a
/// wrong password) and start a session: `(user, session id, CSRF token)`. A session id sent
/// with the login ends: the id changes at every login.
pub(crate) async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    password: &str,
) -> Result<(crate::store::User, String, String), ApiError> {
    same_site(headers)?;
    let now = (state.clock)();
    if state.throttle.locked(name, now) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins: wait 15 minutes",
        ));
    }
    let row = state.store.user_row(name).await?;
    let hash = match &row {
        Some((_, h)) => h.as_str(),
        None => crate::auth::dummy_hash(),
    };
    // the hash is checked off the async threads: it takes tens of milliseconds
    let (p, h) = (password.to_string(), hash.to_string());
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&p, &h))
        .await
        .unwrap_or(false);
    let Some((user, _)) = row.filter(|_| ok) else {
        state.throttle.fail(name, now);
        return Err(wrong());
    };
    state.throttle.succeed(name);
    if let Some(old) = crate::access::session_cookie(headers) {
        state.store.delete_session(&old).await?;
    }
    let (id, csrf) = state.store.create_session(&user, now).await?;
    state
        .store
        .audit(&user.name, "login", &user.name, "")
        .await?;
    Ok((user, id, csrf))
}

/// The `Set-Cookie` value of a new session: `HttpOnly`, `SameSite=Strict`, `Secure` when the
/// server is reached over HTTPS.
pub(crate) fn session_cookie_header(state: &AppState, id: &str) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The `Set-Cookie` value that ends the session cookie.
pub(crate) const CLEAR_COOKIE: &str =
    "streamprep_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";

/// Log out: the session ends on the server.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn logout(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    if let Via::Session(id) = &auth.via {
        state.store.delete_session(id).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, CLEAR_COOKIE)]).into_response())
}

/// Who is logged in.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Session), (status = 401), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn me(State(state): State<AppState>, auth: Auth) -> Result<Json<Session>, ApiError> {
    let csrf = match &auth.via {
        Via::Session(id) => state
            .store
            .session(id, (state.clock)())
            .await?
            .map(|(_, c)| c),
        Via::Token => None,
    };
    Ok(Json(Session {
        name: auth.user.name,
        role: auth.user.role.to_string(),
        csrf,
    }))
}

/// A label for a new API token.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct TokenRequest {
    /// What the token is for (at most 200 bytes).
    #[schema(max_length = 200)]
    pub label: String,
}

/// A new API token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    /// `Authorization: Bearer TOKEN`.
    pub token: String,
}

/// Make an API token for yourself (for scripts: `Authorization: Bearer TOKEN`).
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenRequest, responses((status = 201, body = NewToken), (status = 422, description = "the body is not the JSON asked for"), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(t): JsonBody<TokenRequest>,
) -> Result<Response, ApiError> {
    if t.label.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "label: at most 200 bytes",
        ));
    }
    let token = state
        .store
        .create_token(&auth.user, &t.label, (state.clock)())
        .await?;
    state
        .store
        .audit(&auth.user.name, "token.add", &auth.user.name, &t.label)
        .await?;
    Ok((StatusCode::CREATED, Json(NewToken { token })).into_response())
}

/// A user, as the API shows it (never its password).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
}

/// A new user.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct NewUser {
    /// Login name (1 to 64 characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// viewer, operator or admin.
    #[schema(pattern = "^(viewer|operator|admin)$")]
    pub role: String,
    /// 12 to 1024 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

/// Every user (admins).
#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [UserView]), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<UserView>>, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(
        state
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| UserView {
                name: u.name,
                role: u.role.to_string(),
            })
            .collect(),
    ))
}

/// Add a user (admins).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, responses((status = 201, body = UserView), (status = 409), (status = 422), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn add_user(
    State(state): State<AppState>,
    Admin(auth): Admin,
    JsonBody(n): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let role: Role = n.role.parse().map_err(|e: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("role: {e}"))
    })?;
    let store = state.store.clone();
    let (name, password) = (n.name.clone(), n.password.clone());
    let u = store.add_user(&name, role, &password).await?;
    state
        .store
        .audit(
            &auth.user.name,
            "user.add",
            &u.name,
            &format!("role {role}"),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            name: u.name,
            role: u.role.to_string(),
        }),
    )
        .into_response())
}

/// Remove a user, its sessions and tokens (admins).
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "login name")), responses((status = 204), (status = 404), (status = 409, description = "you cannot remove yourself"), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
async fn delete_user(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if name == auth.user.name {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "you cannot remove yourself",
        ));
    }
    state.store.delete_user(&name).await?;
    state
        .store
        .audit(&auth.user.name, "user.del", &name, "")
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One change in the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Milliseconds since 1970.
    pub at_ms: i64,
    /// Who.
    pub user: String,
    /// What (`project.start`, `user.add`, `login`, ...).
    pub action: String,
    /// On what (a project id, a user name).
    pub target: String,
    /// More about it.
    pub detail: String,
}

/// The audit log, newest first (the last 500 changes; admins).
#[utoipa::path(get, path = "/api/v1/audit", responses((status = 200, body = [AuditEntry]), (status = 401, description = "not logged in"), (status = 403, description = "admins only")))]
async fn audit(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(
        state
            .store
            .audit_log(500)
            .await?
            .into_iter()
            .map(|(at_ms, user, action, target, detail)| AuditEntry {
                at_ms,
                user,
                action,
                target,
                detail,
            })
            .collect(),
    ))
}

/// A planning request: a profile and the load to plan for.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct PlanBody {
    /// The CSV `streamprep profile` wrote (method, buffer, stage, ..., mean_us, ...).
    pub profile_csv: Option<String>,
    /// Or a stored profile's name.
    pub profile: Option<String>,
    /// Rows a second the pipeline must take.
    pub arrival_rate: f64,
    /// Keep the utilisation under this (default 0.7).
    pub target_rho: Option<f64>,
    /// Only settings whose predicted latency is under this many milliseconds.
    pub max_latency_ms: Option<f64>,
    /// Cores of the host (default: this server's).
    pub cores: Option<usize>,
    /// Evaluate this method only: inline, pool or queue.
    pub method: Option<String>,
    /// Exactly this many workers.
    pub workers: Option<usize>,
    /// Consider 1 up to this many workers (default 8).
    pub max_workers: Option<usize>,
    /// The queue's workers are on other hosts: the link's round trip, milliseconds (with
    /// `link_mbit`; the profile measured the queue with its worker beside Redis).
    pub link_rtt_ms: Option<f64>,
    /// The link's bandwidth each way, megabits a second.
    pub link_mbit: Option<f64>,
    /// Worker hosts, each behind such a link (default 1).
    pub worker_hosts: Option<usize>,
    /// Tasks and results across the link: `none` (the default), `lz4`, or `auto` (LZ4 from a
    /// 1 ms round trip); LZ4 needs a profile with LZ4 sizes.
    pub task_compression: Option<String>,
    /// How rows arrive: `random` (the default: many independent sensors) or `regular` (a
    /// steady pace); the wait for a worker depends on it (G/G/c).
    pub arrivals: Option<String>,
}

/// The planner: each buffer size and worker count's predicted utilisation and latency at the
/// arrival rate (queueing theory over the measured service times), and the recommendation.
#[utoipa::path(
    post,
    path = "/api/v1/plan",
    request_body = PlanBody,
    responses(
        (status = 200, body = Object, description = "settings and the recommendation, as `streamprep plan --json`"),
        (status = 401, description = "not logged in"),
        (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site"),
        (status = 404, description = "no stored profile of that name"),
        (status = 422, description = "the profile or the request cannot be planned from")
    )
)]
async fn plan(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(b): JsonBody<PlanBody>,
) -> Result<Response, ApiError> {
    use streamprep_engine::planner;
    let bad = |e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e);
    let csv = match (b.profile_csv, &b.profile) {
        (Some(csv), _) => csv,
        (None, Some(name)) => state.store.profile(name).await?,
        (None, None) => {
            return Err(bad(
                "give profile_csv, or profile (a stored one's name)".into()
            ))
        }
    };
    let profile = planner::parse_profile(&csv).map_err(|e| bad(format!("profile_csv: {e}")))?;
    let req = planner::PlanRequest {
        arrival_rate: b.arrival_rate,
        target_rho: b.target_rho.unwrap_or(0.7),
        max_latency_ms: b.max_latency_ms,
        cores: b
            .cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 4096),
        method: b.method,
        workers: b.workers,
        max_workers: b.max_workers,
        link: planner::link(
            b.link_rtt_ms,
            b.link_mbit,
            b.worker_hosts,
            b.task_compression.as_deref(),
        )
        .map_err(bad)?,
        arrivals: planner::Arrivals::parse(b.arrivals.as_deref()).map_err(bad)?,
    };
    let plan = planner::plan(&profile, &req).map_err(bad)?;
    Ok(Json(plan.to_json()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicI64, Ordering};
    use tower::ServiceExt;

    struct World {
        state: AppState,
        now: Arc<AtomicI64>,
        /// Bearer tokens by role.
        tokens: std::collections::HashMap<&'static str, String>,
    }

    const PASSWORD: &str = "a long enough password";

    async fn world() -> World {
        let store = crate::store::Store::memory().await.expect("store");
        let mut state = AppState::new(store.clone());
        let now = Arc::new(AtomicI64::new(1_800_000_000_000));
        let n = now.clone();
        state.clock = Arc::new(move || n.load(Ordering::SeqCst));
        let mut tokens = std::collections::HashMap::new();
        for (name, role) in [
            ("viewer", Role::Viewer),
            ("operator", Role::Operator),
            ("admin", Role::Admin),
        ] {
            let u = store.add_user(name, role, PASSWORD).await.expect("user");
            tokens.insert(
                name,
                store.create_token(&u, "test", 0).await.expect("token"),
            );
        }
        World { state, now, tokens }
    }

    struct Answer {
        status: StatusCode,
        body: String,
        headers: HeaderMap,
    }

    async fn send(
        w: &World,
        method: &str,
        uri: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost:8080")
            .header(header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = router(w.state.clone())
            .oneshot(req.body(Body::from(body.to_string())).expect("request"))
            .await
            .expect("answer");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            headers,
        }
    }

    async fn call(w: &World, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let auth = format!("Bearer {}", w.tokens["admin"]);
        let a = send(w, method, uri, body, &[("authorization", &auth)]).await;
        (a.status, a.body)
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    /// Log in; the session cookie and the CSRF token.
    async fn login(w: &World, name: &str, extra: &[(&str, &str)]) -> (String, String) {
        let a = send(
            w,
            "POST",
            "/api/v1/login",
            &format!(r#"{{"name": "{name}", "password": "{PASSWORD}"}}"#),
            extra,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let cookie = a
            .headers
            .get(header::SET_COOKIE)
            .and_then(|c| c.to_str().ok())
            .expect("a cookie")
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let id = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("id");
        assert_eq!(id.len(), 32, "128 random bits");
        (
            format!("{COOKIE}={id}"),
            json(&a.body)["csrf"].as_str().expect("csrf").to_string(),
        )
    }

    /// Every route and method the router has, from the OpenAPI document it generates.
    async fn routes(w: &World) -> Vec<(String, String)> {
        let a = send(w, "GET", "/api/openapi.json", "", &[]).await;
        let doc = json(&a.body);
        let mut out = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("ops").keys() {
                out.push((
                    method.to_uppercase(),
                    path.replace("{name}", "someone").replace("{id}", "nope"),
                ));
            }
        }
        out
    }

    #[tokio::test]
    async fn health_catalogue_and_openapi() {
        let w = world().await;
        let a = send(&w, "GET", "/healthz", "", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(json(&a.body)["status"], "ok");
        // every answer, errors included, carries the security headers
        for a in [
            a,
            send(&w, "GET", "/nope", "", &[]).await,
            send(&w, "POST", "/api/v1/validate", "{}", &[]).await,
        ] {
            let h = |n: &str| {
                a.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let csp = h("content-security-policy");
            assert!(
                csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
                "{csp}"
            );
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
                "{csp}"
            );
            assert_eq!(h("x-content-type-options"), "nosniff");
            assert_eq!(h("x-frame-options"), "DENY");
            assert_eq!(h("referrer-policy"), "same-origin");
            assert_eq!(h("cache-control"), "no-store");
        }
        let (s, body) = call(&w, "GET", "/api/v1/steps", "").await;
        assert_eq!(s, StatusCode::OK);
        let steps = json(&body);
        let mms = steps
            .as_array()
            .expect("list")
            .iter()
            .find(|s| s["name"] == "min_max_scaler")
            .expect("min_max_scaler");
        assert_eq!(mms["options"][0]["name"], "feature_range");
        assert_eq!(mms["options"][0]["default"], "[0, 1]");
        let (s, body) = call(&w, "GET", "/api/v1/connectors", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(json(&body)
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["scheme"] == "mqtt" && c["source"] == true && c["sink"] == true));
        let a = send(&w, "GET", "/api/openapi.json", "", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        let doc = json(&a.body);
        assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
        for path in [
            "/healthz",
            "/api/v1/steps",
            "/api/v1/connectors",
            "/api/v1/validate",
            "/metrics",
            "/api/v1/login",
            "/api/v1/users",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} not documented");
        }
        let (s, _) = call(&w, "GET", "/nope", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // the vendored chart library is served from the binary
        let a = send(&w, "GET", "/assets/vendor/uplot/uPlot.iife.min.js", "", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("uPlot"));
        assert_eq!(
            a.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            send(&w, "GET", "/assets/nope.js", "", &[]).await.status,
            StatusCode::NOT_FOUND
        );
        let profile = "method,buffer,stage,count,mean_us\ninline,100,chain,10,2000\n";
        let (s, body) = call(
            &w,
            "POST",
            "/api/v1/plan",
            &serde_json::json!({"profile_csv": profile, "arrival_rate": 20000, "cores": 4})
                .to_string(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let plan = json(&body);
        // 200 messages/s of 2 ms: rho 0.4 on one worker, the recommendation under 0.7
        assert!((plan["settings"][0]["rho"].as_f64().expect("rho") - 0.4).abs() < 1e-9);
        assert!(plan["recommendation"]["rho"].as_f64().expect("rho") < 0.7);
        let (s, body) = call(
            &w,
            "POST",
            "/api/v1/plan",
            r#"{"profile_csv": "x", "arrival_rate": 1}"#,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("profile_csv"), "{body}");
        let (s, body) = call(&w, "GET", "/metrics", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("streamprep_cores_busy"), "{body}");
    }

    #[tokio::test]
    async fn validate_names_every_wrong_field_and_returns_a_good_spec_as_kept() {
        let w = world().await;
        let (s, body) = call(&w, "POST", "/api/v1/validate", "{}").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<String> = json(&body)["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(fields, ["source", "sink", "chain", "buffer"]);
        let (s, body) = call(&w, "POST", "/api/v1/validate", r#"{"bufer": 3}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("unknown field"), "{body}");
        let (s, body) = call(&w, "POST", "/api/v1/validate", "not json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let good = r#"{"name": "<script>alert(1)</script>", "source": "generator:davis?rows=10",
            "chain": ["fillna_zeros", {"step": "min_max_scaler", "feature_range": [-1, 1]}],
            "buffer": 10, "sink": "-"}"#;
        let (s, body) = call(&w, "POST", "/api/v1/validate", good).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v = json(&body);
        assert_eq!(
            v["name"], "<script>alert(1)</script>",
            "text comes back exactly"
        );
        assert_eq!(v["spec"]["chain"][1]["feature_range"][1], 1);
        let bad_option = r#"{"source": "-", "sink": "-", "buffer": 1, "chain": [{"step": "min_max_scaler", "feature_range": [2, 1]}]}"#;
        let (s, body) = call(&w, "POST", "/api/v1/validate", bad_option).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&body)["errors"][0]["field"], "chain", "{body}");
    }

    /// Every route that changes something, taken from the router: 401 without a login; with a
    /// cookie session, 403 without the CSRF token, with a wrong one, or sent from another
    /// site; 403 for a viewer where it needs more.
    #[tokio::test]
    async fn every_state_changing_route_needs_a_login_a_csrf_token_the_same_site_and_its_role() {
        let w = world().await;
        let changing: Vec<(String, String)> = routes(&w)
            .await
            .into_iter()
            .filter(|(m, p)| m != "GET" && p != "/api/v1/login")
            .collect();
        assert!(changing.len() >= 5, "{changing:?}");
        let (viewer_cookie, viewer_csrf) = login(&w, "viewer", &[]).await;
        let (cookie, csrf) = login(&w, "operator", &[]).await;
        for (m, p) in &changing {
            let a = send(&w, m, p, "{}", &[]).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{m} {p} without a login"
            );
            let a = send(&w, m, p, "{}", &[("cookie", &cookie)]).await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{m} {p} without a CSRF token"
            );
            let a = send(
                &w,
                m,
                p,
                "{}",
                &[("cookie", &cookie), ("x-csrf-token", "0000")],
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{m} {p} with a wrong CSRF token"
            );
            let a = send(
                &w,
                m,
                p,
                "{}",
                &[
                    ("cookie", &cookie),
                    ("x-csrf-token", &csrf),
                    ("sec-fetch-site", "cross-site"),
                ],
            )
            .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{m} {p} from another site");
            let a = send(
                &w,
                m,
                p,
                "{}",
                &[
                    ("cookie", &cookie),
                    ("x-csrf-token", &csrf),
                    ("origin", "https://evil.example"),
                ],
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{m} {p} with a foreign Origin"
            );
            if !matches!(p.as_str(), "/api/v1/logout" | "/api/v1/tokens") {
                let a = send(
                    &w,
                    m,
                    p,
                    "{}",
                    &[("cookie", &viewer_cookie), ("x-csrf-token", &viewer_csrf)],
                )
                .await;
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{m} {p} as a viewer: {}",
                    a.body
                );
            }
        }
        // and with everything right, the request gets through (to its own checks)
        let a = send(
            &w,
            "POST",
            "/api/v1/validate",
            "{}",
            &[
                ("cookie", &cookie),
                ("x-csrf-token", &csrf),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        // reading needs a login too (but no CSRF token)
        let a = send(&w, "GET", "/api/v1/steps", "", &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let a = send(
            &w,
            "GET",
            "/api/v1/steps",
            "",
            &[("cookie", &viewer_cookie)],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn sessions_change_at_login_end_at_logout_and_time_out() {
        let w = world().await;
        let (first, _) = login(&w, "operator", &[]).await;
        // behind an HTTPS proxy the cookie is Secure
        let mut secure = world().await;
        secure.state.secure_cookies = true;
        let a = send(
            &secure,
            "POST",
            "/api/v1/login",
            &format!(r#"{{"name": "viewer", "password": "{PASSWORD}"}}"#),
            &[],
        )
        .await;
        let c = a
            .headers
            .get(header::SET_COOKIE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        assert!(c.ends_with("; Secure"), "{c}");
        // logging in again with the old cookie: a new id, and the old one is dead
        let (second, csrf) = login(&w, "operator", &[("cookie", &first)]).await;
        assert_ne!(first, second);
        assert_eq!(
            send(&w, "GET", "/api/v1/me", "", &[("cookie", &first)])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let me = send(&w, "GET", "/api/v1/me", "", &[("cookie", &second)]).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(json(&me.body)["name"], "operator");
        // logout ends the session on the server
        let out = send(
            &w,
            "POST",
            "/api/v1/logout",
            "",
            &[("cookie", &second), ("x-csrf-token", &csrf)],
        )
        .await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        assert_eq!(
            send(&w, "GET", "/api/v1/me", "", &[("cookie", &second)])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        // idle timeout: 30 minutes without a request
        let (c, _) = login(&w, "operator", &[]).await;
        w.now.fetch_add(29 * 60_000, Ordering::SeqCst);
        assert_eq!(
            send(&w, "GET", "/api/v1/me", "", &[("cookie", &c)])
                .await
                .status,
            StatusCode::OK
        );
        w.now.fetch_add(31 * 60_000, Ordering::SeqCst);
        assert_eq!(
            send(&w, "GET", "/api/v1/me", "", &[("cookie", &c)])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        // absolute timeout: 12 hours after the login, however busy
        let (c, _) = login(&w, "operator", &[]).await;
        for _ in 0..36 {
            w.now.fetch_add(20 * 60_000, Ordering::SeqCst);
            assert_eq!(
                send(&w, "GET", "/api/v1/me", "", &[("cookie", &c)])
                    .await
                    .status,
                StatusCode::OK
            );
        }
        w.now.fetch_add(20 * 60_000, Ordering::SeqCst);
        assert_eq!(
            send(&w, "GET", "/api/v1/me", "", &[("cookie", &c)])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn logins_say_the_same_for_unknown_names_and_are_throttled() {
        let w = world().await;
        let try_login = |name: &'static str, pw: &'static str| {
            let w = &w;
            async move {
                send(
                    w,
                    "POST",
                    "/api/v1/login",
                    &format!(r#"{{"name": "{name}", "password": "{pw}"}}"#),
                    &[],
                )
                .await
            }
        };
        let unknown = try_login("nobody", "whatever it is").await;
        let wrong = try_login("viewer", "not the password").await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!((unknown.status, unknown.body), (wrong.status, wrong.body));
        for _ in 0..4 {
            try_login("viewer", "not the password").await;
        }
        let locked = try_login("viewer", PASSWORD).await;
        assert_eq!(
            locked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            locked.body
        );
        w.now.fetch_add(16 * 60_000, Ordering::SeqCst);
        assert_eq!(try_login("viewer", PASSWORD).await.status, StatusCode::OK);
        let cross = send(
            &w,
            "POST",
            "/api/v1/login",
            r#"{"name": "viewer", "password": "x"}"#,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_users_are_managed_by_admins() {
        let w = world().await;
        let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(MAX_BODY + 10));
        let (s, _) = call(&w, "POST", "/api/v1/validate", &big).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let (s, body) = call(&w, "POST", "/api/v1/users", r#"{"name": "<img src=x onerror=alert(1)>", "role": "viewer", "password": "twelve chars ok"}"#).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let (s, body) = call(&w, "GET", "/api/v1/users", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(json(&body)
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["name"] == "<img src=x onerror=alert(1)>"));
        assert!(!body.contains("argon2"), "no hash in answers: {body}");
        let (s, _) = call(
            &w,
            "POST",
            "/api/v1/users",
            r#"{"name": "x", "role": "root", "password": "twelve chars ok"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = call(
            &w,
            "POST",
            "/api/v1/users",
            r#"{"name": "viewer", "role": "viewer", "password": "twelve chars ok"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = call(&w, "DELETE", "/api/v1/users/viewer", "").await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, body) = call(&w, "GET", "/api/v1/audit", "").await;
        assert_eq!(s, StatusCode::OK);
        let log = json(&body);
        let del = log
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["action"] == "user.del")
            .expect("the removal is audited");
        assert_eq!(
            (del["user"].as_str(), del["target"].as_str()),
            (Some("admin"), Some("viewer"))
        );
        let (s, _) = call(&w, "DELETE", "/api/v1/users/viewer", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // the viewer's token died with it
        let a = send(
            &w,
            "GET",
            "/api/v1/me",
            "",
            &[("authorization", &format!("Bearer {}", w.tokens["viewer"]))],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        // a token is shown once and works
        let (s, body) = call(&w, "POST", "/api/v1/tokens", r#"{"label": "script"}"#).await;
        assert_eq!(s, StatusCode::CREATED);
        let token = json(&body)["token"].as_str().expect("token").to_string();
        let a = send(
            &w,
            "GET",
            "/api/v1/me",
            "",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(json(&a.body)["name"], "admin");
    }
}

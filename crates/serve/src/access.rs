//! Who is asking, and may they: API tokens (`Authorization: Bearer`), browser sessions (a
//! cookie holding a random 128-bit id; every request that changes something also carries the
//! session's CSRF token, and cross-site requests are refused by `Sec-Fetch-Site` and
//! `Origin`), roles, and the throttling of failed logins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::AppState;
use crate::auth::same;
use crate::store::{Role, User};

/// The session cookie's name.
pub const COOKIE: &str = "streamprep_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Failed logins of one name before it is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, and how long a lock lasts.
pub const LOCK_MS: i64 = 15 * 60 * 1000;

/// An answer other than success, as JSON `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What to tell the caller (never a secret, never a store detail).
    pub message: String,
}

impl ApiError {
    /// An error with this status and text.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::Exists(w) => ApiError::new(StatusCode::CONFLICT, format!("{w} exists already")),
            E::Missing(w) => ApiError::new(StatusCode::NOT_FOUND, format!("no {w}")),
            E::Invalid(w) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w),
            E::Db(e) => {
                tracing::warn!("store: {e}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the store did not answer")
            }
        }
    }
}

/// The time, in milliseconds since 1970 (a test injects its own).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Failed logins per name: (failures, first failure, locked until).
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, i64, i64)>>,
}

impl Throttle {
    /// Is `name` locked now?
    pub fn locked(&self, name: &str, now: i64) -> bool {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.get(name).is_some_and(|(_, _, until)| *until > now)
    }

    /// Count a failure; true when it locks the name.
    pub fn fail(&self, name: &str, now: i64) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() > 100_000 {
            f.retain(|_, (_, first, until)| now - *first < LOCK_MS || *until > now);
        }
        let e = f.entry(name.to_string()).or_insert((0, now, 0));
        if now - e.1 > LOCK_MS {
            *e = (0, now, 0);
        }
        e.0 += 1;
        if e.0 >= MAX_FAILURES {
            e.2 = now + LOCK_MS;
            return true;
        }
        false
    }

    /// A good login clears the count.
    pub fn succeed(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session (its id).
    Session(String),
    /// An API token.
    Token,
}

/// A caller that is logged in (and, for a request that changes something through a cookie,
/// that sent the session's CSRF token from the same site).
#[derive(Debug, Clone)]
pub struct Auth {
    /// Who.
    pub user: User,
    /// How.
    pub via: Via,
}

impl Auth {
    /// Refuse a caller below `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this needs the role {role}"),
            ))
        }
    }
}

/// The session id in the request's cookies.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Refuse a request a browser sent from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none`, or an `Origin` whose host is not the request's `Host`.
pub fn same_site(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let cross = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "a request from another site is refused",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Err(cross());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h.trim_end_matches('/'))
            .unwrap_or("?");
        if origin_host != host {
            return Err(cross());
        }
    }
    Ok(())
}

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let login = || ApiError::new(StatusCode::UNAUTHORIZED, "log in, or send an API token");
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            let user = state.store.token_user(token).await?.ok_or_else(login)?;
            return Ok(Auth {
                user,
                via: Via::Token,
            });
        }
        let id = session_cookie(&parts.headers).ok_or_else(login)?;
        let (user, csrf) = state
            .store
            .session(&id, (state.clock)())
            .await?
            .ok_or_else(login)?;
        if changes(&parts.method) {
            same_site(&parts.headers)?;
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(sent, &csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the CSRF token is missing or wrong (header X-CSRF-Token)",
                ));
            }
        }
        Ok(Auth {
            user,
            via: Via::Session(id),
        })
    }
}

/// A caller with at least the operator role (checked before the body is read).
#[derive(Debug, Clone)]
pub struct Operator(pub Auth);

/// A caller with the admin role (checked before the body is read).
#[derive(Debug, Clone)]
pub struct Admin(pub Auth);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(Role::Operator)?;
        Ok(Operator(auth))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(Role::Admin)?;
        Ok(Admin(auth))
    }
}

/// A JSON body; a body that is not JSON of the expected shape (or not sent as JSON) is a 422
/// in the API's own form, `{"error": "the body: ..."}`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => {
                let status = rejection.status();
                let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    status
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                Err(ApiError::new(
                    status,
                    format!("the body: {}", rejection.body_text()),
                ))
            }
        }
    }
}

//! The web pages: server-rendered with askama (every value HTML-escaped by the template
//! engine), plain forms that POST and redirect, each carrying the session's CSRF token, and one
//! script of our own (`assets/app/app.js`) that keeps them live over `EventSource` and draws
//! the charts with uPlot. One file per page; `stream.rs` holds the pages' live streams.
//!
//! Who may do what is the API's rule: a page needs a session (else it redirects to the login);
//! a form that changes something needs the operator role (users: admin), the CSRF token of
//! the session in its `csrf` field, and a same-site request (`Sec-Fetch-Site`, `Origin`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::access::{same_site, session_cookie};
use crate::api::AppState;
use crate::auth::same;
use crate::store::{Role, User};

pub mod form;
pub mod history;
pub mod login;
pub mod overview;
pub mod planner;
pub mod project;
pub mod stream;
pub mod users;

/// The pages' routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/projects/new", get(form::new_page))
        .route("/projects", post(form::create))
        .route("/projects/import", post(form::import))
        .route("/projects/{id}", get(project::page).post(form::update))
        .route("/projects/{id}/edit", get(form::edit_page))
        .route("/projects/{id}/export", get(project::export))
        .route("/projects/{id}/start", post(project::start))
        .route("/projects/{id}/stop", post(project::stop))
        .route("/projects/{id}/delete", post(project::delete))
        .route("/projects/{id}/stream", get(stream::project))
        .route("/stream/overview", get(stream::overview))
        .route("/planner", get(planner::page).post(planner::submit))
        .route("/history", get(history::page).post(history::submit))
        .route("/history/{id}/cancel", post(history::cancel))
        .route("/planner/apply", post(planner::apply))
        .route("/users", get(users::page).post(users::add))
        .route("/users/delete", post(users::delete))
        .route("/users/password", post(users::password))
}

/// What every page's frame shows: who is logged in, their token for the forms, the menu.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The user's name.
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    /// The session's CSRF token (a hidden field in every form).
    pub csrf: String,
    /// May create, edit, start and stop.
    pub operator: bool,
    /// May manage users.
    pub admin: bool,
    /// The menu entry of this page.
    pub here: &'static str,
}

/// A logged-in browser (a session cookie): a page that is not logged in is sent to the login.
#[derive(Debug, Clone)]
pub struct Browser {
    /// Who.
    pub user: User,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's id.
    pub session: String,
}

impl Browser {
    /// The frame of a page.
    pub fn chrome(&self, here: &'static str) -> Chrome {
        Chrome {
            name: self.user.name.clone(),
            role: self.user.role.to_string(),
            csrf: self.csrf.clone(),
            operator: self.user.role >= Role::Operator,
            admin: self.user.role >= Role::Admin,
            here,
        }
    }

    /// Refuse a user below `role`.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                format!("this needs the role {role}"),
            ))
        }
    }
}

/// Where to send a browser that must log in first (back here afterwards).
fn to_login(parts: &Parts) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let next: String = serde_urlencoded::to_string([("next", path.as_str())]).unwrap_or_default();
    Redirect::to(&format!("/login?{next}")).into_response()
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(id) = session_cookie(&parts.headers) else {
            return Err(to_login(parts));
        };
        match state.store.session(&id, (state.clock)()).await {
            Ok(Some((user, csrf))) => Ok(Browser {
                user,
                csrf,
                session: id,
            }),
            Ok(None) => Err(to_login(parts)),
            Err(e) => Err(PageError::from(crate::access::ApiError::from(e)).into_response()),
        }
    }
}

/// A form sent by a logged-in browser from this site, with the session's CSRF token: its
/// fields in order (a name may repeat).
#[derive(Debug)]
pub struct Posted {
    /// Who sent it.
    pub browser: Browser,
    /// `(name, value)` in the order sent, the `csrf` field left out.
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of `name` (empty when absent).
    pub fn get(&self, name: &str) -> &str {
        field(&self.fields, name)
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The first value of `name` among form fields (empty when absent).
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// An `application/x-www-form-urlencoded` body as `(name, value)` pairs.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, PageError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "the form's fields could not be read",
        )
    })
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        same_site(&parts.headers).map_err(|e| PageError::from(e).into_response())?;
        let req = Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| PageError::new(e.status(), e.body_text()).into_response())?;
        let mut fields = parse_form(&bytes).map_err(IntoResponse::into_response)?;
        let sent = fields
            .iter()
            .position(|(k, _)| k == "csrf")
            .map(|i| fields.remove(i).1)
            .unwrap_or_default();
        if !same(&sent, &browser.csrf) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "this form is out of date or was not sent from this site: reload the page and try again",
            )
            .into_response());
        }
        Ok(Posted { browser, fields })
    }
}

/// A page that could not be shown: its status and what to tell the user.
#[derive(Debug)]
pub struct PageError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong (never a secret or a store detail).
    pub message: String,
}

impl PageError {
    /// An error page with this status and text.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::access::ApiError> for PageError {
    fn from(e: crate::access::ApiError) -> Self {
        PageError::new(e.status, e.message)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::access::ApiError::from(e).into()
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The status, as a number and its reason.
    pub status: String,
    /// What went wrong.
    pub message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: format!(
                "{} {}",
                self.status.as_u16(),
                self.status.canonical_reason().unwrap_or("")
            ),
            message: self.message,
        };
        (self.status, html(&page)).into_response()
    }
}

/// A rendered template as an HTML answer (a template that fails to render is our bug: a 500
/// that says nothing more, logged).
pub fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!("rendering a page: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

/// `303 See Other` to `to` (after a POST).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A path inside this site to go back to (`next`), or `/`: never another site.
pub fn local_path(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if ok {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// Field errors by field name, for a form.
pub type Errors = HashMap<String, String>;

/// `1234.5` -> `1,234.5`-like short text for a figure: `-` when it is not a number.
pub fn figure(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "-".into()
    }
}

/// Milliseconds since 1970 as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = streamprep_connectors::generator::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod matrix;

#[cfg(test)]
mod tests;

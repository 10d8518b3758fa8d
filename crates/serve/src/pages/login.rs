//! The login page, and logging out (a button on every page).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{html, local_path, parse_form, see_other, PageError, Posted};
use crate::api::AppState;

/// The login form.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Where to go once logged in.
    pub next: String,
    /// The name typed (shown again after a wrong password).
    pub name: String,
    /// Why the last try failed.
    pub error: Option<String>,
}

/// `?next=/path`.
#[derive(Debug, serde::Deserialize)]
pub struct Next {
    /// Where to go once logged in.
    #[serde(default)]
    pub next: String,
}

/// `GET /login`.
pub async fn page(Query(q): Query<Next>) -> Response {
    html(&LoginPage {
        next: local_path(&q.next),
        name: String::new(),
        error: None,
    })
}

/// `POST /login`: a session and its cookie, then back to where the user was going. There is
/// no session yet to bind a CSRF token to: a login from another site is refused by
/// `Sec-Fetch-Site` and `Origin`, and the session cookie is `SameSite=Strict`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let fields = parse_form(&body)?;
    let (name, password) = (
        super::field(&fields, "name"),
        super::field(&fields, "password"),
    );
    let next = local_path(super::field(&fields, "next"));
    match crate::api::start_session(&state, &headers, name, password).await {
        Ok((_, id, _)) => {
            let mut r = see_other(&next);
            if let Ok(v) = crate::api::session_cookie_header(&state, &id).parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => Err(e.into()),
        Err(e) => Ok((
            e.status,
            html(&LoginPage {
                next,
                name: name.to_string(),
                error: Some(e.message),
            }),
        )
            .into_response()),
    }
}

/// `POST /logout`: the session ends on the server and its cookie is cleared.
pub async fn logout(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    state.store.delete_session(&posted.browser.session).await?;
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(crate::api::CLEAR_COOKIE),
    );
    Ok(r)
}

//! The users page (admins): every user and their role, add one, remove one, set a password.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{html, see_other, Browser, Chrome, PageError, Posted};
use crate::api::AppState;
use crate::store::Role;

/// A user as listed.
#[derive(Debug, Clone)]
pub struct UserLine {
    /// Login name.
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    /// The one looking (cannot remove themself).
    pub me: bool,
}

/// The users page.
#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    /// The frame.
    pub chrome: Chrome,
    /// Every user.
    pub users: Vec<UserLine>,
    /// The name typed in the form to add (shown again after an error).
    pub new_name: String,
    /// The role chosen.
    pub new_role: String,
    /// What went wrong.
    pub error: Option<String>,
    /// What was done.
    pub note: Option<String>,
}

async fn users_page(state: &AppState, browser: &Browser) -> Result<UsersPage, PageError> {
    Ok(UsersPage {
        chrome: browser.chrome("users"),
        users: state
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| UserLine {
                me: u.name == browser.user.name,
                name: u.name,
                role: u.role.to_string(),
            })
            .collect(),
        new_name: String::new(),
        new_role: "viewer".into(),
        error: None,
        note: None,
    })
}

/// `GET /users`.
pub async fn page(State(state): State<AppState>, browser: Browser) -> Result<Response, PageError> {
    browser.require(Role::Admin)?;
    Ok(html(&users_page(&state, &browser).await?))
}

/// The page again with an error (422) or a note.
async fn again(
    state: &AppState,
    posted: &Posted,
    outcome: Result<String, String>,
) -> Result<Response, PageError> {
    let mut page = users_page(state, &posted.browser).await?;
    match outcome {
        Ok(note) => {
            page.note = Some(note);
            Ok(html(&page))
        }
        Err(e) => {
            page.error = Some(e);
            page.new_name = posted.get("name").to_string();
            page.new_role = posted.get("role").to_string();
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response())
        }
    }
}

/// `POST /users`: add a user.
pub async fn add(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Admin)?;
    let name = posted.get("name").to_string();
    let role: Role = match posted.get("role").parse() {
        Ok(r) => r,
        Err(e) => return again(&state, &posted, Err(e)).await,
    };
    match state
        .store
        .add_user(&name, role, posted.get("password"))
        .await
    {
        Ok(u) => {
            state
                .store
                .audit(
                    &posted.browser.user.name,
                    "user.add",
                    &u.name,
                    &format!("role {role}"),
                )
                .await?;
            Ok(see_other("/users"))
        }
        Err(e) => {
            let e = crate::access::ApiError::from(e);
            again(&state, &posted, Err(e.message)).await
        }
    }
}

/// `POST /users/delete`: remove a user, their sessions and tokens.
pub async fn delete(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Admin)?;
    let name = posted.get("name").to_string();
    if name == posted.browser.user.name {
        return again(&state, &posted, Err("you cannot remove yourself".into())).await;
    }
    state.store.delete_user(&name).await?;
    state
        .store
        .audit(&posted.browser.user.name, "user.del", &name, "")
        .await?;
    Ok(see_other("/users"))
}

/// `POST /users/password`: set a user's password.
pub async fn password(
    State(state): State<AppState>,
    posted: Posted,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Admin)?;
    let name = posted.get("name").to_string();
    match state
        .store
        .set_password(&name, posted.get("password"))
        .await
    {
        Ok(()) => {
            state
                .store
                .audit(&posted.browser.user.name, "user.passwd", &name, "")
                .await?;
            again(
                &state,
                &posted,
                Ok(format!("the password of {name} is set")),
            )
            .await
        }
        Err(e) => {
            let e = crate::access::ApiError::from(e);
            again(&state, &posted, Err(e.message)).await
        }
    }
}

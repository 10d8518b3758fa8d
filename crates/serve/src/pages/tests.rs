//! The pages' security promises, without a browser: a page needs a session, a form needs the
//! session's CSRF token and a same-site request, roles hold, every page carries the CSP, and
//! `next` never leads to another site.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::api::{router, AppState, CSP};
use crate::store::{Role, Store};

const PASSWORD: &str = "a long enough password";

struct Answer {
    status: StatusCode,
    location: String,
    csp: String,
    body: String,
}

async fn send(
    state: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = router(state.clone())
        .oneshot(req.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("answer");
    let h = |n: header::HeaderName| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (status, location, csp) = (
        r.status(),
        h(header::LOCATION),
        h(header::CONTENT_SECURITY_POLICY),
    );
    let cookie = h(header::SET_COOKIE);
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        location,
        csp,
        body: format!("{cookie}\n{}", String::from_utf8_lossy(&bytes)),
    }
}

/// A server with a viewer and an operator; (state, [(cookie, csrf)] for viewer, operator).
async fn world() -> (AppState, Vec<(String, String)>) {
    let store = Store::memory().await.expect("store");
    let state = AppState::new(store.clone());
    let mut sessions = Vec::new();
    for (name, role) in [("viewer", Role::Viewer), ("operator", Role::Operator)] {
        let u = store.add_user(name, role, PASSWORD).await.expect("user");
        let (id, csrf) = store
            .create_session(&u, crate::store::now_ms())
            .await
            .expect("session");
        sessions.push((format!("{}={id}", crate::access::COOKIE), csrf));
    }
    (state, sessions)
}

#[tokio::test]
async fn pages_need_a_session_and_carry_the_csp() {
    let (state, s) = world().await;
    for path in [
        "/",
        "/projects/new",
        "/planner",
        "/history",
        "/users",
        "/projects/x",
    ] {
        let a = send(&state, "GET", path, &[], "").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            a.location.starts_with("/login?next="),
            "{path}: {}",
            a.location
        );
    }
    let a = send(&state, "GET", "/login", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.csp, CSP);
    assert!(
        !a.body.contains("<script>") && !a.body.contains(" style="),
        "no inline script or style"
    );
    let a = send(&state, "GET", "/", &[("cookie", &s[0].0)], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.csp, CSP);
    // a viewer sees no operator's buttons and may not open the form or the users
    assert!(!a.body.contains("/projects/new"));
    for path in ["/projects/new", "/users"] {
        let a = send(&state, "GET", path, &[("cookie", &s[0].0)], "").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn a_form_needs_the_sessions_token_from_this_site_and_the_role() {
    let (state, s) = world().await;
    let (op_cookie, op_csrf) = &s[1];
    let form = |csrf: &str| {
        format!("csrf={csrf}&name=p&source=generator%3Adavis%3Frows%3D10&buffer=10&sink=-&step=abs&options=&action=save")
    };
    // no token, a wrong token, the viewer's token
    for body in [form(""), form("00ff"), form(&s[0].1)] {
        let a = send(&state, "POST", "/projects", &[("cookie", op_cookie)], &body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{body}");
    }
    // another site, even with the token
    for (h, v) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://evil.example"),
    ] {
        let a = send(
            &state,
            "POST",
            "/projects",
            &[("cookie", op_cookie), (h, v)],
            &form(op_csrf),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{h}: {v}");
    }
    // no session: to the login, nothing done
    let a = send(&state, "POST", "/projects", &[], &form(op_csrf)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(state.store.projects().await.expect("projects").is_empty());
    // the operator, from this site, with the token: saved, then to its page
    let a = send(
        &state,
        "POST",
        "/projects",
        &[
            ("cookie", op_cookie),
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://localhost:8080"),
        ],
        &form(op_csrf),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let id = state.store.projects().await.expect("projects")[0]
        .id
        .clone();
    assert_eq!(a.location, format!("/projects/{id}"));
    // a viewer with its own token may not start it
    let a = send(
        &state,
        "POST",
        &format!("/projects/{id}/start"),
        &[("cookie", &s[0].0)],
        &format!("csrf={}", s[0].1),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(state.active.get(&id).is_none(), "not started");
}

#[tokio::test]
async fn logging_in_through_the_page_and_out() {
    let (state, _) = world().await;
    // another site's login is refused; a wrong password says so and sets no cookie
    let body = format!(
        "name=operator&password={}&next=%2Fplanner",
        PASSWORD.replace(' ', "+")
    );
    let a = send(
        &state,
        "POST",
        "/login",
        &[("sec-fetch-site", "cross-site")],
        &body,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(
        &state,
        "POST",
        "/login",
        &[],
        "name=operator&password=wrong+one+entirely",
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.starts_with('\n'), "no cookie: {}", a.body);
    // the right one: a session cookie, and back to `next`
    let a = send(&state, "POST", "/login", &[], &body).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location, "/planner");
    let cookie = a
        .body
        .lines()
        .next()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    assert!(
        cookie.starts_with("streamprep_session=") && a.body.contains("HttpOnly; SameSite=Strict")
    );
    // `next` never leads elsewhere
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let b = format!(
            "name=operator&password={}&next={}",
            PASSWORD.replace(' ', "+"),
            urlencode(next)
        );
        let a = send(&state, "POST", "/login", &[], &b).await;
        assert_eq!(a.location, "/", "{next}");
    }
    // out: the session ends on the server
    let page = send(&state, "GET", "/", &[("cookie", &cookie)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the token in the page")
        .to_string();
    let a = send(
        &state,
        "POST",
        "/logout",
        &[("cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.body.contains("Max-Age=0"));
    let a = send(&state, "GET", "/", &[("cookie", &cookie)], "").await;
    assert_eq!(
        a.status,
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("encode")[2..].to_string()
}

/// The history page: a viewer sees it but starts no job (no button, and a post is refused);
/// an operator's post needs the session's token; a question that cannot work is said on the
/// page, by field.
#[tokio::test]
async fn the_history_page_starts_jobs_for_operators_with_the_token() {
    let (state, s) = world().await;
    let (viewer, viewer_csrf) = &s[0];
    let (op, op_csrf) = &s[1];
    let a = send(&state, "GET", "/history", &[("cookie", viewer)], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        !a.body.contains(">Query</button>"),
        "a viewer has no query button"
    );
    let body = |csrf: &str| {
        format!("csrf={csrf}&source=postgres%3A%2F%2Fme%40h%2Fdb&from=x&to=y&columns=a&interval=1s&points=")
    };
    let a = send(
        &state,
        "POST",
        "/history",
        &[("cookie", viewer)],
        &body(viewer_csrf),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(&state, "POST", "/history", &[("cookie", op)], &body("00ff")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a wrong token");
    let a = send(
        &state,
        "POST",
        "/history",
        &[("cookie", op)],
        &body(op_csrf),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("id=\"history-error\""), "{}", a.body);
    assert!(a.body.contains("source: name the table"), "{}", a.body);
}

/// A source's password never shows: not in the address the history form leads to, not in the
/// job's page; sent back masked, it stands for the one the job was asked with.
#[tokio::test]
async fn the_history_pages_never_show_a_sources_password() {
    let (state, s) = world().await;
    let (op, op_csrf) = &s[1];
    let body = format!("csrf={op_csrf}&source=postgres%3A%2F%2Fme%3As3cret%40127.0.0.1%3A1%2Fdb%3Ftable%3Dt&time_column=ts&from=2026-01-01T00%3A00%3A00Z&to=2026-01-02T00%3A00%3A00Z&columns=a&interval=1s&points=");
    let a = send(&state, "POST", "/history", &[("cookie", op)], &body).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(!a.location.contains("s3cret"), "{}", a.location);
    let page = send(&state, "GET", &a.location, &[("cookie", op)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("s3cret"), "the password is write-only");
    assert!(
        page.body.contains("me:********@127.0.0.1:1"),
        "{}",
        page.body
    );
    // sent back masked (the zoom posts the form as shown): the same job, so the same secret
    let again = body.replace("me%3As3cret%40", "me%3A********%40");
    let b = send(&state, "POST", "/history", &[("cookie", op)], &again).await;
    assert_eq!(b.status, StatusCode::SEE_OTHER, "{}", b.body);
    let id = b.location.rsplit('=').next().unwrap_or_default();
    let asked = state.history.query_of(id).expect("the job");
    assert!(
        asked.source.contains("me:s3cret@"),
        "the password it stands for: {}",
        asked.source
    );
    // a masked password nothing stands for is refused, not tried
    let unknown = again.replace("127.0.0.1%3A1", "127.0.0.1%3A2");
    let c = send(&state, "POST", "/history", &[("cookie", op)], &unknown).await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(c.body.contains("the password is masked"), "{}", c.body);
}

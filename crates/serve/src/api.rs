//! The JSON API under `/api/v1`, its OpenAPI document, `/healthz` and `/metrics`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use streamprep_project::{FieldError, ProjectSpec, Runs};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The runs this server hosts.
    pub runs: Runs,
    /// Users, sessions, projects, runs, the audit log.
    pub store: crate::store::Store,
}

impl AppState {
    /// A server's state on `store`.
    pub fn new(store: crate::store::Store) -> Self {
        AppState {
            runs: Runs::default(),
            store,
        }
    }
}

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
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(steps))
        .routes(routes!(connectors))
        .routes(routes!(validate))
        .routes(routes!(metrics))
        .with_state(state)
        .split_for_parts();
    let doc = api.to_pretty_json().unwrap_or_default();
    router.route(
        "/api/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
    )
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
#[utoipa::path(get, path = "/api/v1/steps", responses((status = 200, body = [StepView])))]
async fn steps() -> Json<Vec<StepView>> {
    use streamprep_ops::registry::{OptionKind, StepKind, STEPS};
    Json(
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
                        kind: match o.kind {
                            OptionKind::Range => "[low, high]".into(),
                            OptionKind::Integer { min } => format!("integer >= {min}"),
                            OptionKind::Choice(words) => words.join(" | "),
                        },
                        default: o.default.into(),
                        doc: o.doc.into(),
                    })
                    .collect(),
                alias_of: s.alias_of.map(|(a, b)| (a.into(), b.into())),
            })
            .collect(),
    )
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
#[utoipa::path(get, path = "/api/v1/connectors", responses((status = 200, body = [ConnectorView])))]
async fn connectors() -> Json<Vec<ConnectorView>> {
    use streamprep_connectors::registry::CONNECTORS;
    Json(
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
    )
}

/// A spec that can run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Valid {
    /// The project's name (or its source when it has none).
    pub name: String,
    /// The spec as it will be kept: defaults left out, a chain entry with options as a table.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
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
    request_body(content = Object, description = "a project spec: the fields of a project file, as JSON", content_type = "application/json"),
    responses(
        (status = 200, body = Valid, description = "the spec can run"),
        (status = 422, body = Invalid, description = "the fields that are wrong")
    )
)]
async fn validate(body: Bytes) -> Response {
    let checked = std::str::from_utf8(&body)
        .map_err(|_| streamprep_project::SpecError::field("project", "the body is not UTF-8"))
        .and_then(ProjectSpec::from_json)
        .and_then(|spec| spec.resolve().map(|plan| (spec, plan)));
    match checked {
        Ok((spec, plan)) => (
            StatusCode::OK,
            Json(Valid {
                name: plan.name,
                spec: serde_json::to_value(&spec).unwrap_or_default(),
            }),
        )
            .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Invalid {
                errors: e.errors.into_iter().map(Into::into).collect(),
            }),
        )
            .into_response(),
    }
}

/// The runs' metrics in Prometheus' text format, labelled by pipeline.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.runs.prometheus(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let store = crate::store::Store::memory().await.expect("store");
        let r = router(AppState::new(store))
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
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

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    #[tokio::test]
    async fn health_catalogue_and_openapi() {
        let (s, body) = call("GET", "/healthz", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(json(&body)["status"], "ok");
        let (s, body) = call("GET", "/api/v1/steps", "").await;
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
        let (s, body) = call("GET", "/api/v1/connectors", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(json(&body)
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["scheme"] == "mqtt" && c["source"] == true && c["sink"] == true));
        let (s, body) = call("GET", "/api/openapi.json", "").await;
        assert_eq!(s, StatusCode::OK);
        let doc = json(&body);
        assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
        for path in [
            "/healthz",
            "/api/v1/steps",
            "/api/v1/connectors",
            "/api/v1/validate",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} not documented");
        }
        let (s, _) = call("GET", "/nope", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn validate_names_every_wrong_field_and_returns_a_good_spec_as_kept() {
        let (s, body) = call("POST", "/api/v1/validate", "{}").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<String> = json(&body)["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(fields, ["source", "sink", "chain", "buffer"]);
        let (s, body) = call("POST", "/api/v1/validate", r#"{"bufer": 3}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("unknown field"), "{body}");
        let (s, body) = call("POST", "/api/v1/validate", "not json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let good = r#"{"name": "<script>alert(1)</script>", "source": "generator:davis?rows=10",
            "chain": ["fillna_zeros", {"step": "min_max_scaler", "feature_range": [-1, 1]}],
            "buffer": 10, "sink": "-"}"#;
        let (s, body) = call("POST", "/api/v1/validate", good).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v = json(&body);
        assert_eq!(
            v["name"], "<script>alert(1)</script>",
            "text comes back exactly"
        );
        assert_eq!(v["spec"]["chain"][1]["feature_range"][1], 1);
        let bad_option = r#"{"source": "-", "sink": "-", "buffer": 1, "chain": [{"step": "min_max_scaler", "feature_range": [2, 1]}]}"#;
        let (s, body) = call("POST", "/api/v1/validate", bad_option).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&body)["errors"][0]["field"], "chain", "{body}");
    }
}

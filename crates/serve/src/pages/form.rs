//! The project form (the paper's figure 6), to add and to edit a project: its fields, the
//! chain built from the step catalogue with each step's options, the source and sinks from
//! the connector catalogue. The server checks every field and shows each error next to its
//! field; "Check" shows the planner's verdict at the stated arrival rate without saving.
//! TOML import (a project file pasted in) and export (a download on the project page).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use streamprep_project::{FieldError, ProjectSpec, SpecError};

use super::{html, see_other, Browser, Chrome, Errors, PageError, Posted};
use crate::api::AppState;
use crate::store::Role;

/// The text fields of the form, in the order of a project file; `(field, label, hint)`.
pub const TEXT_FIELDS: &[(&str, &str, &str)] = &[
    (
        "name",
        "Name",
        "names the project in the app, its logs and metrics",
    ),
    ("description", "Description", "what the project is for"),
    (
        "source",
        "Source",
        "where rows come from, e.g. mqtt://127.0.0.1:1883/wetter?qos=1",
    ),
    (
        "source_format",
        "Source format",
        "ndjson or csv, for stdin, TCP and MQTT (files: from the extension)",
    ),
    (
        "buffer",
        "Buffer",
        "rows a message (the paper's buffering factor), or auto",
    ),
    (
        "max_latency",
        "Max latency",
        "with buffer auto: the latency a row should stay under, e.g. 50ms",
    ),
    (
        "max_wait",
        "Max wait",
        "a live source's message closes when its oldest row has waited this long, e.g. 50ms",
    ),
    ("method", "Method", "inline, pool or queue"),
    (
        "workers",
        "Workers",
        "worker threads of the pool (default: the cores)",
    ),
    (
        "broker",
        "Broker",
        "the queue method's Redis, redis://HOST:PORT",
    ),
    (
        "in_flight",
        "In flight",
        "the queue method: messages sent and not yet back, at most",
    ),
    (
        "task_compression",
        "Task compression",
        "the queue method: none, lz4, or auto (LZ4 once the workers are 1 ms or more from Redis)",
    ),
    (
        "sink",
        "Sink",
        "where results go, e.g. file:/path/out.ndjson",
    ),
    (
        "sink_format",
        "Sink format",
        "ndjson or csv, for stdout, TCP and MQTT",
    ),
    (
        "dead_letter",
        "Dead letters",
        "where refused rows go, with their reasons (default: the server's log)",
    ),
    (
        "compression",
        "Compression",
        "none, or zlib-base64 (each row base64(zlib(text)))",
    ),
    (
        "max_row",
        "Largest row",
        "bytes: a line, a TCP frame, an MQTT publish",
    ),
    ("csv_sep", "CSV separator", "pandas' sep: , ; | or a tab"),
    (
        "backpressure",
        "Backpressure",
        "block (nothing lost) or drop_oldest (shed and count)",
    ),
    (
        "rate",
        "Replay rate",
        "replay a file at this many rows a second, or steps like 20000:10s,200000:10s",
    ),
    (
        "key",
        "Key",
        "the column whose value a row's state belongs to (station): rolling, ewm_mean and diff keep state per key",
    ),
    (
        "key_ttl",
        "Key idle time",
        "a key with no row for this long (5m) has its state dropped",
    ),
    (
        "max_keys",
        "Most keys",
        "beyond this many keys the least recently seen one's state is dropped",
    ),
    (
        "ordered",
        "Order",
        "with a key: key (messages per key, each key's rows in order) or global (the stream's order)",
    ),
    (
        "state",
        "State file",
        "keeps the steps' per-key state between runs (the server keeps it in its store when empty)",
    ),
    (
        "arrival_rate",
        "Arrival rate",
        "rows a second the project is expected to take: the planner judges the setting against it",
    ),
];

/// Fields given as a choice in the form: `(field, choices)`; the empty choice is the default.
pub const CHOICES: &[(&str, &[&str])] = &[
    ("source_format", &["", "ndjson", "csv"]),
    ("sink_format", &["", "ndjson", "csv"]),
    ("method", &["", "inline", "pool", "queue"]),
    ("task_compression", &["", "none", "lz4", "auto"]),
    ("compression", &["", "none", "zlib-base64"]),
    ("backpressure", &["", "block", "drop_oldest"]),
    ("ordered", &["", "key", "global"]),
];

/// Fields that hold whole numbers.
const INTEGERS: &[&str] = &["workers", "in_flight", "max_row", "max_keys"];

/// One field as the template shows it.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its name in a project file (and the form).
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// What to put there.
    pub hint: &'static str,
    /// Its value.
    pub value: String,
    /// The choices, when it is a choice.
    pub choices: Vec<&'static str>,
    /// A value that is not one of the choices (shown as one more, chosen).
    pub custom: bool,
    /// What is wrong with it.
    pub error: Option<String>,
    /// A data list of suggestions (connector syntaxes) by id.
    pub list: &'static str,
}

/// One step of the chain in the form.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The step's name (empty: no step).
    pub step: String,
    /// Its options, as TOML inline-table fields: `feature_range = [-1, 1]`.
    pub options: String,
    /// The step is in the catalogue (or the slot is empty).
    pub known: bool,
}

/// A step of the catalogue.
#[derive(Debug, Clone)]
pub struct StepChoice {
    /// Its name.
    pub name: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The pandas / scikit-learn expression it equals.
    pub equals: &'static str,
    /// Its options with their defaults (`feature_range = [0, 1]`), empty when none.
    pub options: String,
    /// Each option's documentation.
    pub docs: Vec<(String, String)>,
}

/// A connector of the catalogue.
#[derive(Debug, Clone)]
pub struct ConnectorChoice {
    /// Its scheme.
    pub scheme: &'static str,
    /// How a spec of it reads.
    pub syntax: &'static str,
    /// What it is.
    pub summary: &'static str,
    /// source, sink, or source and sink.
    pub roles: String,
    /// Its options: `name (kind, default): doc`.
    pub options: Vec<String>,
}

/// The planner's verdict, as shown.
#[derive(Debug, Clone)]
pub struct VerdictView {
    /// Predicted rho.
    pub rho: String,
    /// Predicted mean latency, ms.
    pub latency_ms: String,
    /// The most rows a second.
    pub max_rate: String,
    /// rho < 1.
    pub stable: bool,
    /// What to do about it.
    pub warning: Option<String>,
}

/// The form page.
#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    /// The frame.
    pub chrome: Chrome,
    /// "New project" or "Edit NAME".
    pub title: String,
    /// Where the form posts.
    pub action: String,
    /// The project being edited.
    pub id: Option<String>,
    /// The fields.
    pub fields: Vec<Field>,
    /// The chain.
    pub slots: Vec<Slot>,
    /// The chain's error.
    pub chain_error: Option<String>,
    /// Errors not tied to a field of the form.
    pub general: Vec<String>,
    /// The step catalogue.
    pub steps: Vec<StepChoice>,
    /// The connector catalogue.
    pub connectors: Vec<ConnectorChoice>,
    /// Stored profiles for the check.
    pub profiles: Vec<String>,
    /// The profile chosen for the check.
    pub profile: String,
    /// The check passed (no field is wrong).
    pub checked: bool,
    /// The planner's verdict.
    pub verdict: Option<VerdictView>,
    /// Why there is no verdict.
    pub verdict_note: Option<String>,
    /// A project file pasted for import.
    pub import_text: String,
    /// Why the import failed.
    pub import_errors: Vec<String>,
}

fn steps() -> Vec<StepChoice> {
    use streamprep_ops::registry::{StepKind, STEPS};
    STEPS
        .iter()
        .filter(|s| !matches!(s.kind, StepKind::Boundary))
        .map(|s| StepChoice {
            name: s.name,
            summary: s.summary,
            equals: s.equals,
            options: s
                .options
                .iter()
                .map(|o| format!("{} = {}", o.name, o.default))
                .collect::<Vec<_>>()
                .join(", "),
            docs: s
                .options
                .iter()
                .map(|o| (o.name.to_string(), o.doc.to_string()))
                .collect(),
        })
        .collect()
}

fn connectors() -> Vec<ConnectorChoice> {
    use streamprep_connectors::registry::CONNECTORS;
    CONNECTORS
        .iter()
        .map(|c| ConnectorChoice {
            scheme: c.scheme,
            syntax: c.syntax,
            summary: c.summary,
            roles: match (c.source, c.sink) {
                (true, true) => "source and sink",
                (true, false) => "source",
                _ => "sink",
            }
            .into(),
            options: c
                .options
                .iter()
                .map(|o| {
                    if o.default.is_empty() {
                        format!("{} ({}): {}", o.name, o.kind, o.doc)
                    } else {
                        format!("{} ({}, default {}): {}", o.name, o.kind, o.default, o.doc)
                    }
                })
                .collect(),
        })
        .collect()
}

/// A spec's fields as the form's text (`values[name]`) and its chain as slots.
fn values_of(spec: &ProjectSpec) -> (Map<String, Value>, Vec<Slot>) {
    let masked = crate::projects::masked(spec);
    let Ok(Value::Object(mut map)) = serde_json::to_value(&masked) else {
        return (Map::new(), Vec::new());
    };
    let slots = spec
        .chain
        .as_ref()
        .map(|c| c.steps())
        .unwrap_or_default()
        .iter()
        .map(|entry| match streamprep_ops::registry::split_entry(entry) {
            Ok((name, options)) => Slot {
                known: false,
                step: name.to_string(),
                options: options
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            Err(_) => Slot {
                known: false,
                step: entry.clone(),
                options: String::new(),
            },
        })
        .collect();
    map.remove("chain");
    (map, slots)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The form's fields with their values and errors.
fn fields(values: &Map<String, Value>, errors: &Errors) -> Vec<Field> {
    TEXT_FIELDS
        .iter()
        .map(|(name, label, hint)| {
            let value = values.get(*name).map(text).unwrap_or_default();
            let choices: Vec<&'static str> = CHOICES
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, c)| c.to_vec())
                .unwrap_or_default();
            (name, label, hint, value, choices)
        })
        .map(|(name, label, hint, value, choices)| Field {
            name,
            label,
            hint,
            custom: !choices.is_empty() && !choices.contains(&value.as_str()),
            value,
            choices,
            error: errors.get(*name).cloned(),
            list: match *name {
                "source" => "sources",
                "sink" | "dead_letter" => "sinks",
                _ => "",
            },
        })
        .collect()
}

/// The form's posted fields as a spec (JSON object), starting from `base` (fields the form
/// does not show, such as `schema`, are kept); errors the server finds in the form itself.
fn spec_of(posted: &Posted, base: Map<String, Value>) -> (Map<String, Value>, Vec<FieldError>) {
    let mut spec = base;
    let mut errors = Vec::new();
    for (name, _, _) in TEXT_FIELDS {
        let raw = posted.get(name).trim();
        spec.remove(*name);
        if raw.is_empty() {
            continue;
        }
        let value = if INTEGERS.contains(name) {
            match raw.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    errors.push(FieldError {
                        field: name.to_string(),
                        message: format!("'{raw}' is not a whole number"),
                    });
                    continue;
                }
            }
        } else if *name == "arrival_rate" {
            match raw.parse::<f64>() {
                Ok(x) if x.is_finite() => Value::from(x),
                _ => {
                    errors.push(FieldError {
                        field: name.to_string(),
                        message: format!("'{raw}' is not a number of rows a second"),
                    });
                    continue;
                }
            }
        } else if *name == "buffer" || *name == "rate" {
            match raw.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(raw),
            }
        } else {
            Value::from(raw)
        };
        spec.insert(name.to_string(), value);
    }
    // the chain: one entry per slot with a step, its options parsed as TOML
    let names = posted.all("step");
    let options = posted.all("options");
    let mut chain = Vec::new();
    for (i, step) in names.iter().enumerate() {
        let step = step.trim();
        let opts = options.get(i).map_or("", |o| o.trim());
        if step.is_empty() {
            continue;
        }
        if opts.is_empty() {
            chain.push(Value::from(step));
            continue;
        }
        match toml::from_str::<toml::Table>(&format!("o = {{ {opts} }}")) {
            Ok(t) => {
                let mut entry = Map::new();
                entry.insert("step".into(), Value::from(step));
                if let Some(toml::Value::Table(o)) = t.get("o") {
                    for (k, v) in o {
                        entry.insert(k.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
                    }
                }
                chain.push(Value::Object(entry));
            }
            Err(e) => errors.push(FieldError {
                field: "chain".into(),
                message: format!(
                    "step {} ({step}): the options '{opts}' are not name = value pairs: {}",
                    i + 1,
                    e.message()
                ),
            }),
        }
    }
    spec.remove("chain");
    if !chain.is_empty() {
        spec.insert("chain".into(), Value::Array(chain));
    }
    (spec, errors)
}

/// A spec that does not parse as a whole: which fields do not parse alone, each with its
/// own message (the parser's message for the whole names one field and a column).
fn per_field(json: &Map<String, Value>, whole: SpecError) -> Vec<FieldError> {
    let found: Vec<FieldError> = json
        .iter()
        .filter_map(|(k, v)| {
            let one = Value::Object(Map::from_iter([(k.clone(), v.clone())])).to_string();
            let e = ProjectSpec::from_json(&one).err()?;
            let message = e
                .errors
                .into_iter()
                .map(|e| tidy(&e.message, k))
                .collect::<Vec<_>>()
                .join("; ");
            Some(FieldError {
                field: k.clone(),
                message,
            })
        })
        .collect();
    if found.is_empty() {
        whole.errors
    } else {
        found
    }
}

/// `buffer = "lots": give ... at line 1 column 17` -> `"lots": give ...`.
fn tidy(message: &str, field: &str) -> String {
    let m = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    m.strip_prefix(&format!("{field} = "))
        .unwrap_or(m)
        .to_string()
}

/// The slots as posted (to show the form again as it was sent).
fn slots_of(posted: &Posted) -> Vec<Slot> {
    let options = posted.all("options");
    posted
        .all("step")
        .iter()
        .enumerate()
        .map(|(i, s)| Slot {
            known: false,
            step: s.to_string(),
            options: options.get(i).map_or(String::new(), |o| o.to_string()),
        })
        .filter(|s| !s.step.trim().is_empty() || !s.options.trim().is_empty())
        .collect()
}

/// Two empty slots after the chain, to add steps without a script.
fn with_room(mut slots: Vec<Slot>) -> Vec<Slot> {
    slots.extend([Slot::default(), Slot::default()]);
    slots
}

/// A form page ready to show.
async fn form_page(
    state: &AppState,
    browser: &Browser,
    id: Option<String>,
    title: String,
    values: &Map<String, Value>,
    slots: Vec<Slot>,
    errors: Vec<FieldError>,
) -> Result<FormPage, PageError> {
    let shown: Vec<&str> = TEXT_FIELDS.iter().map(|(f, _, _)| *f).collect();
    let mut by_field = Errors::new();
    let mut general = Vec::new();
    let mut chain_error = None;
    for e in errors {
        if e.field == "chain" {
            chain_error = Some(match chain_error {
                Some(prev) => format!("{prev}; {}", e.message),
                None => e.message,
            });
        } else if shown.contains(&e.field.as_str()) {
            by_field
                .entry(e.field.clone())
                .and_modify(|m: &mut String| {
                    m.push_str("; ");
                    m.push_str(&e.message);
                })
                .or_insert(e.message);
        } else {
            general.push(format!("{}: {}", e.field, e.message));
        }
    }
    let catalogue = steps();
    let mut slots = with_room(slots);
    for s in &mut slots {
        s.known = s.step.is_empty() || catalogue.iter().any(|c| c.name == s.step);
    }
    Ok(FormPage {
        chrome: browser.chrome("new"),
        action: match &id {
            Some(id) => format!("/projects/{id}"),
            None => "/projects".into(),
        },
        id,
        title,
        fields: fields(values, &by_field),
        slots,
        chain_error,
        general,
        steps: catalogue,
        connectors: connectors(),
        profiles: state.store.profiles().await?,
        profile: String::new(),
        checked: false,
        verdict: None,
        verdict_note: None,
        import_text: String::new(),
        import_errors: Vec::new(),
    })
}

/// `GET /projects/new`.
pub async fn new_page(
    State(state): State<AppState>,
    browser: Browser,
) -> Result<Response, PageError> {
    browser.require(Role::Operator)?;
    let mut values = Map::new();
    values.insert("buffer".into(), Value::from(100));
    values.insert("method".into(), Value::from("pool"));
    let page = form_page(
        &state,
        &browser,
        None,
        "New project".into(),
        &values,
        Vec::new(),
        Vec::new(),
    )
    .await?;
    Ok(html(&page))
}

/// `GET /projects/{id}/edit`.
pub async fn edit_page(
    State(state): State<AppState>,
    browser: Browser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    browser.require(Role::Operator)?;
    let row = state.store.project(&id).await?;
    let spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
    let (values, slots) = values_of(&spec);
    let page = form_page(
        &state,
        &browser,
        Some(id),
        format!("Edit {}", row.name),
        &values,
        slots,
        Vec::new(),
    )
    .await?;
    Ok(html(&page))
}

/// Save (or only check) a posted form; `id` for an edit.
async fn submit(
    state: &AppState,
    posted: Posted,
    id: Option<String>,
) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    let base = match &id {
        Some(id) => {
            let row = state.store.project(id).await?;
            let spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
            match serde_json::to_value(&spec) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    let (json, mut errors) = spec_of(&posted, base);
    let spec = match ProjectSpec::from_json(&Value::Object(json.clone()).to_string()) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(per_field(&json, e));
            None
        }
    };
    let check = posted.get("action") == "check";
    let title = match &id {
        Some(_) => format!("Edit {}", posted.get("name")),
        None => "New project".to_string(),
    };
    let mut shown = json.clone();
    for (name, _, _) in TEXT_FIELDS {
        shown.insert(name.to_string(), Value::from(posted.get(name)));
    }
    let slots = slots_of(&posted);
    if let (Some(spec), true) = (spec.clone(), errors.is_empty()) {
        if check {
            let field_errors = crate::projects::checked(spec.clone(), state.files_root.as_deref())
                .err()
                .map(|e| e.errors)
                .unwrap_or_default();
            let ok = field_errors.is_empty();
            let mut page = form_page(
                state,
                &posted.browser,
                id,
                title,
                &shown,
                slots,
                field_errors,
            )
            .await?;
            page.checked = ok;
            page.profile = posted.get("profile").to_string();
            if ok {
                let profile = Some(posted.get("profile")).filter(|p| !p.is_empty());
                match spec.resolve() {
                    Ok(plan) => {
                        let (v, note) = crate::api::judge(state, &spec, &plan, profile).await?;
                        page.verdict = v.map(|v| VerdictView {
                            rho: super::figure(v.rho, 3),
                            latency_ms: v
                                .latency_ms
                                .map_or("unbounded".into(), |l| super::figure(l, 1)),
                            max_rate: super::figure(v.max_rate_rows_per_s, 0),
                            stable: v.stable,
                            warning: v.warning,
                        });
                        page.verdict_note = note;
                    }
                    Err(e) => page.general.extend(e.errors.into_iter().map(|e| e.message)),
                }
            }
            return Ok(html(&page));
        }
        match crate::projects::save(state, &posted.browser.user.name, id.as_deref(), spec).await {
            Ok(Ok(id)) => return Ok(see_other(&format!("/projects/{id}"))),
            Ok(Err(e)) => errors.extend(e.errors),
            Err(e) if e.status == StatusCode::CONFLICT => errors.push(FieldError {
                field: "name".into(),
                message: format!("{}: choose another name", e.message),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    let mut page = form_page(state, &posted.browser, id, title, &shown, slots, errors).await?;
    page.profile = posted.get("profile").to_string();
    Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response())
}

/// `POST /projects`: add a project (or check it).
pub async fn create(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    submit(&state, posted, None).await
}

/// `POST /projects/{id}`: save a project's new spec (or check it).
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    submit(&state, posted, Some(id)).await
}

/// `POST /projects/import`: add a project from a pasted project file (TOML).
pub async fn import(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    let text = posted.get("toml").to_string();
    let errors = match ProjectSpec::from_toml(&text) {
        Ok(spec) => {
            match crate::projects::save(&state, &posted.browser.user.name, None, spec).await {
                Ok(Ok(id)) => return Ok(see_other(&format!("/projects/{id}"))),
                Ok(Err(e)) => e,
                Err(e) if e.status == StatusCode::CONFLICT => SpecError::field("name", e.message),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => e,
    };
    let mut values = Map::new();
    values.insert("buffer".into(), Value::from(100));
    let mut page = form_page(
        &state,
        &posted.browser,
        None,
        "New project".into(),
        &values,
        Vec::new(),
        Vec::new(),
    )
    .await?;
    page.import_text = text;
    page.import_errors = import_messages(errors);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response())
}

fn import_messages(e: SpecError) -> Vec<String> {
    e.errors
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect()
}

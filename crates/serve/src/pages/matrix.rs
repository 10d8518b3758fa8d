//! The template matrix, without a browser: every template is rendered with every string it
//! shows set to each XSS payload, and its markup (the tags and their attributes, in order)
//! must be exactly the markup it has with a plain word there. Nothing a user typed or a
//! sensor sent becomes markup; no link, form or source address starts with `javascript:`.

use askama::Template;

use super::form::{ConnectorChoice, Field, FormPage, Slot, StepChoice, VerdictView};
use super::login::LoginPage;
use super::overview::{Line, OverviewPage};
use super::planner::{PlanLine, PlannerForm, PlannerPage};
use super::project::{ProjectPage, RunLine, SpecLine};
use super::users::{UserLine, UsersPage};
use super::{Chrome, ErrorPage};

fn chrome(s: &str) -> Chrome {
    Chrome {
        name: s.into(),
        role: s.into(),
        csrf: s.into(),
        operator: true,
        admin: true,
        here: "overview",
    }
}

fn line(s: &str) -> Line {
    Line {
        id: s.into(),
        name: s.into(),
        source: s.into(),
        state: s.into(),
        active: false,
        method: s.into(),
        buffer: s.into(),
        workers: s.into(),
        rows_in: s.into(),
        rows_out: s.into(),
        rho: s.into(),
        dead_letters: s.into(),
        backlog: s.into(),
    }
}

fn plan_line(s: &str) -> PlanLine {
    PlanLine {
        buffer: s.into(),
        workers: s.into(),
        method: s.into(),
        measured_with: s.into(),
        service_ms: s.into(),
        rho: s.into(),
        latency_ms: s.into(),
        max_rate: s.into(),
        fits: true,
        best: true,
    }
}

/// Every template, each string it renders set to `s`.
fn pages(s: &str) -> Vec<(&'static str, String)> {
    let render = |name: &'static str, r: askama::Result<String>| (name, r.expect(name));
    vec![
        render(
            "error",
            ErrorPage {
                status: s.into(),
                message: s.into(),
            }
            .render(),
        ),
        render(
            "login",
            LoginPage {
                next: s.into(),
                name: s.into(),
                error: Some(s.into()),
            }
            .render(),
        ),
        render(
            "overview",
            OverviewPage {
                chrome: chrome(s),
                lines: vec![line(s), line(s)],
            }
            .render(),
        ),
        render(
            "project",
            ProjectPage {
                chrome: chrome(s),
                id: s.into(),
                name: s.into(),
                description: s.into(),
                line: line(s),
                spec: vec![SpecLine {
                    field: s.into(),
                    value: s.into(),
                }],
                runs: vec![RunLine {
                    id: s.into(),
                    started: s.into(),
                    started_by: s.into(),
                    ended: s.into(),
                    stopped_by: s.into(),
                    state: s.into(),
                    summary: s.into(),
                }],
            }
            .render(),
        ),
        render(
            "form",
            FormPage {
                chrome: chrome(s),
                title: s.into(),
                action: "/projects".into(),
                id: Some(s.into()),
                fields: vec![
                    Field {
                        name: "name",
                        label: "Name",
                        hint: "hint",
                        value: s.into(),
                        choices: Vec::new(),
                        custom: false,
                        error: Some(s.into()),
                        list: "",
                    },
                    Field {
                        name: "description",
                        label: "Description",
                        hint: "hint",
                        value: s.into(),
                        choices: Vec::new(),
                        custom: false,
                        error: Some(s.into()),
                        list: "",
                    },
                    Field {
                        name: "source",
                        label: "Source",
                        hint: "hint",
                        value: s.into(),
                        choices: Vec::new(),
                        custom: false,
                        error: Some(s.into()),
                        list: "sources",
                    },
                    Field {
                        name: "method",
                        label: "Method",
                        hint: "hint",
                        value: s.into(),
                        choices: vec!["", "inline"],
                        custom: true,
                        error: Some(s.into()),
                        list: "",
                    },
                ],
                slots: vec![Slot {
                    step: s.into(),
                    options: s.into(),
                    known: false,
                }],
                chain_error: Some(s.into()),
                general: vec![s.into()],
                steps: vec![StepChoice {
                    name: "abs",
                    summary: "summary",
                    equals: "equals",
                    options: s.into(),
                    docs: vec![(s.into(), s.into())],
                }],
                connectors: vec![ConnectorChoice {
                    scheme: "file",
                    syntax: "file:PATH",
                    summary: "summary",
                    roles: s.into(),
                    options: vec![s.into()],
                }],
                profiles: vec![s.into()],
                profile: s.into(),
                checked: true,
                verdict: Some(VerdictView {
                    rho: s.into(),
                    latency_ms: s.into(),
                    max_rate: s.into(),
                    stable: false,
                    warning: Some(s.into()),
                }),
                verdict_note: Some(s.into()),
                import_text: s.into(),
                import_errors: vec![s.into()],
            }
            .render(),
        ),
        render(
            "form (new, import)",
            FormPage {
                chrome: chrome(s),
                title: s.into(),
                action: "/projects".into(),
                id: None,
                fields: Vec::new(),
                slots: Vec::new(),
                chain_error: None,
                general: Vec::new(),
                steps: Vec::new(),
                connectors: Vec::new(),
                profiles: Vec::new(),
                profile: String::new(),
                checked: false,
                verdict: None,
                verdict_note: None,
                import_text: s.into(),
                import_errors: vec![s.into()],
            }
            .render(),
        ),
        render(
            "planner",
            PlannerPage {
                chrome: chrome(s),
                profiles: vec![s.into()],
                projects: vec![(s.into(), s.into())],
                f: PlannerForm {
                    profile: s.into(),
                    profile_csv: s.into(),
                    arrival_rate: s.into(),
                    target_rho: s.into(),
                    max_latency_ms: s.into(),
                    method: s.into(),
                    max_workers: s.into(),
                    arrivals: s.into(),
                    link_rtt_ms: s.into(),
                    link_mbit: s.into(),
                    worker_hosts: s.into(),
                    task_compression: s.into(),
                    chain: s.into(),
                    buffers: s.into(),
                    name: s.into(),
                },
                error: Some(s.into()),
                note: Some(s.into()),
                lines: vec![plan_line(s)],
                best: Some(plan_line(s)),
            }
            .render(),
        ),
        render(
            "history",
            crate::pages::history::HistoryPage {
                chrome: chrome(s),
                f: crate::pages::history::HistoryForm {
                    source: s.into(),
                    time_column: s.into(),
                    from: s.into(),
                    to: s.into(),
                    columns: s.into(),
                    interval: s.into(),
                    points: s.into(),
                },
                sources: vec![s.into()],
                job: Some(s.into()),
                error: Some(s.into()),
            }
            .render(),
        ),
        render(
            "users",
            UsersPage {
                chrome: chrome(s),
                users: vec![
                    UserLine {
                        name: s.into(),
                        role: s.into(),
                        me: false,
                    },
                    UserLine {
                        name: s.into(),
                        role: s.into(),
                        me: true,
                    },
                ],
                new_name: s.into(),
                new_role: s.into(),
                error: Some(s.into()),
                note: Some(s.into()),
            }
            .render(),
        ),
    ]
}

/// The markup of a document: each tag with its attributes' names, in order; and the values of
/// attributes that hold addresses.
fn markup(html: &str) -> (Vec<String>, Vec<String>) {
    let b = html.as_bytes();
    let (mut tags, mut urls) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        // a tag, a closing tag, a comment or a doctype
        let start = i;
        i += 1;
        let mut tag = String::from("<");
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
            tag.push(b[i] as char);
            i += 1;
        }
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            let name_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'>' {
                i += 1;
            }
            let name = html[name_start..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    i += 1;
                    let v0 = i;
                    while i < b.len() && b[i] != q {
                        i += 1;
                    }
                    value = html[v0..i.min(b.len())].to_string();
                    i += 1;
                } else {
                    let v0 = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = html[v0..i].to_string();
                }
            }
            if matches!(name.as_str(), "href" | "src" | "action" | "formaction") {
                urls.push(value);
            }
            attrs.push(name);
        }
        assert!(i > start);
        tags.push(format!("{tag} {}", attrs.join(" ")));
        i += 1;
    }
    (tags, urls)
}

#[test]
fn no_payload_becomes_markup_in_any_template() {
    let plain = pages("plain");
    let mut checked = 0;
    for payload in streamprep_testkit::XSS_PAYLOADS {
        for ((name, html), (_, base)) in pages(payload).iter().zip(&plain) {
            let (tags, urls) = markup(html);
            let (base_tags, _) = markup(base);
            assert_eq!(tags, base_tags, "{name}: {payload:?} changed the markup");
            for u in urls {
                let u = u.trim().to_ascii_lowercase();
                assert!(
                    !u.starts_with("javascript:") && !u.starts_with("data:"),
                    "{name}: an address from data: {u}"
                );
            }
            // the payload is there, as text
            assert!(
                html.contains(&escape(payload)),
                "{name}: {payload:?} is not shown (escaped) at all"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        streamprep_testkit::XSS_PAYLOADS.len() * plain.len()
    );
}

/// What askama's HTML escaper makes of a string.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '&' => out.push_str("&#38;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn the_markup_reader_sees_injected_tags_and_attributes() {
    // the check can fail: raw payloads change what it reads
    let (a, _) = markup("<p title=\"x\">plain</p>");
    let (b, _) = markup("<p title=\"x\"><img src=x onerror=y></p>");
    let (c, _) = markup("<p title=\"\" onmouseover=\"y\">plain</p>");
    assert_ne!(a, b);
    assert_ne!(a, c);
    let (_, urls) = markup("<a href=\"javascript:x\">");
    assert_eq!(urls, vec!["javascript:x"]);
}

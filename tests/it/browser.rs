//! The pages in a real browser: `streamprep serve` on a free port, Debian's Chromium driven
//! through Debian's chromedriver (both installed by scripts/test.sh; a test fails, never
//! skips, without them) with fantoccini. Every page is checked for Content-Security-Policy
//! violations (a `securitypolicyviolation` listener put into every document before its own
//! scripts run) and for script that ran (`window.__xss`, dialogs).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::cli::bin;
use super::tcp::free_port;

/// The admin's password in every test server.
pub const ADMIN_PW: &str = "the admin's long password";

/// `streamprep serve` on a free port, in its own directory (store and files).
pub struct App {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its data directory; projects' files live here.
    pub dir: tempfile::TempDir,
}

impl App {
    pub fn start() -> App {
        let dir = tempfile::tempdir().expect("tmp");
        let (child, err, addr) = super::api::serve(dir.path());
        // keep reading its log so it never blocks on a full pipe
        std::thread::spawn(move || for _ in err.lines() {});
        App { child, addr, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A path under the files directory.
    pub fn file(&self, name: &str) -> String {
        let root = std::fs::canonicalize(self.dir.path()).expect("dir");
        format!("file:{}", root.join(name).display())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, with a fresh Chromium profile.
pub struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    pub fn start() -> Driver {
        for tool in ["chromium", "chromedriver"] {
            super::mqtt::need_tool(tool, "Debian's packages chromium and chromium-driver");
        }
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profile: tempfile::tempdir().expect("tmp"),
        }
    }

    /// A browser window of `width` x `height` (below 500 wide: a phone's screen, emulated,
    /// since a desktop window is never narrower than 500).
    pub async fn client(&self, width: u32, height: u32) -> Client {
        let mut caps = serde_json::Map::new();
        let mut options = json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", self.profile.path().join(format!("p{width}x{height}")).display()),
                ]
        });
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3.0, "touch": true }
            });
        }
        caps.insert("goog:chromeOptions".into(), options);
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver");
        c.issue_cmd(Cdp {
            cmd: "Page.addScriptToEvaluateOnNewDocument",
            params: json!({ "source": WATCH }),
        })
        .await
        .expect("the watch script");
        c
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Put into every document before its scripts: CSP violations into `window.__csp`, dialogs
/// counted (and turned into `window.__xss`, as a payload's `alert` would be).
const WATCH: &str = "window.__csp = []; \
document.addEventListener('securitypolicyviolation', function (e) { \
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber); }); \
['alert', 'confirm', 'prompt'].forEach(function (n) { window[n] = function () { window.__xss = 'dialog ' + n; }; });";

/// A Chrome DevTools command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}

/// Run a test's browser part.
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Evaluate `script` (a function body) and return its value.
pub async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Wait until `script` returns true.
pub async fn until(c: &Client, what: &str, script: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if js(c, script, vec![]).await == Value::Bool(true) {
            return;
        }
        if Instant::now() >= deadline {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let page = js(
                c,
                "return document.body ? document.body.innerText.slice(0, 800) : '';",
                vec![],
            )
            .await;
            panic!("waited {secs} s for {what}; at {url}: {page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page is clean: no CSP violation, no script of a payload ran.
pub async fn clean(c: &Client, page: &str) {
    let v = js(
        c,
        "return [window.__csp || null, typeof window.__xss === 'undefined' ? null : String(window.__xss)];",
        vec![],
    )
    .await;
    assert_eq!(
        v[0],
        json!([]),
        "{page}: CSP violations (or the watch script is missing)"
    );
    assert_eq!(v[1], Value::Null, "{page}: a payload's script ran");
}

pub async fn goto(c: &Client, app: &App, path: &str) {
    c.goto(&app.url(path)).await.expect("goto");
}

/// On the history page: fill its form with `fields` (name -> value) and ask.
async fn ask_history(c: &Client, fields: Value) {
    js(
        c,
        "var f = arguments[0]; Object.keys(f).forEach(function (k) { document.querySelector('[name=\"' + k + '\"]').value = f[k]; }); return true;",
        vec![fields],
    )
    .await;
    press(c, "#history-form button[type=submit]").await;
    loaded(c, "history").await;
}

/// Wait until the history page's job is done and `also` (JavaScript over `c`, the chart's
/// node) holds.
async fn history_done(c: &Client, what: &str, also: &str, secs: u64) {
    let script = format!(
        "var p = document.getElementById('h-progress'); var c = document.getElementById('chart-history'); return p && p.getAttribute('data-state') === 'done' && ({also});"
    );
    until(c, what, &script, secs).await;
}

pub async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Mark the document: a condition on `!window.__stale` holds only in the next document.
pub async fn mark(c: &Client) {
    js(c, "window.__stale = true; return true;", vec![]).await;
}

/// Click what `css` finds, marking the document first (see [`loaded`]).
pub async fn press(c: &Client, css: &str) {
    mark(c).await;
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

/// Wait for the next document, a page of this kind.
pub async fn loaded(c: &Client, page: &str) {
    until(
        c,
        &format!("the {page} page"),
        &format!("return !window.__stale && document.body.dataset.page === '{page}';"),
        15,
    )
    .await;
}

pub async fn login(c: &Client, app: &App, name: &str, password: &str) {
    goto(c, app, "/login").await;
    clean(c, "login").await;
    let f = c.form(Locator::Css("form")).await.expect("the login form");
    f.set_by_name("name", name).await.expect("name");
    f.set_by_name("password", password).await.expect("password");
    mark(c).await;
    f.submit().await.expect("log in");
    loaded(c, "overview").await;
}

/// Fill the project form's fields (name -> value) and press `button` (save or check).
pub async fn fill_project(
    c: &Client,
    fields: &[(&str, &str)],
    steps: &[(&str, &str)],
    button: &str,
) {
    let fields: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let steps: Vec<Value> = steps.iter().map(|(s, o)| json!([s, o])).collect();
    js(
        c,
        "var f = arguments[0], steps = arguments[1];
         Object.keys(f).forEach(function (k) { document.querySelector('[name=\"' + k + '\"]').value = f[k]; });
         var sel = document.querySelectorAll('select[name=step]'), opt = document.querySelectorAll('input[name=options]');
         steps.forEach(function (s, i) { sel[i].value = s[0]; opt[i].value = s[1]; });
         window.__stale = true;
         return true;",
        vec![Value::Object(fields), Value::Array(steps)],
    )
    .await;
    c.find(Locator::Css(&format!(
        "button[name=action][value={button}]"
    )))
    .await
    .expect("the button")
    .click()
    .await
    .expect("click");
}

#[test]
fn log_in_create_check_start_chart_stop_dead_letters_plan_and_log_out() {
    let app = App::start();
    let driver = Driver::start();
    // a file with good rows and rows that are not JSON (dead letters with their reasons)
    let rows: String = (0..50)
        .map(|i| {
            if i % 10 == 3 {
                "{not json\n".to_string()
            } else {
                format!("{{\"a\": {i}, \"b\": {}}}\n", i * 2)
            }
        })
        .collect();
    std::fs::write(app.dir.path().join("messy.ndjson"), rows).expect("rows");
    run(async {
        let c = driver.client(1280, 800).await;
        // not logged in: every page leads to the login, and back after it; the login works
        // with the keyboard alone (the name field has the focus, Tab, Enter)
        goto(&c, &app, "/planner").await;
        assert!(c
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/login"));
        let keys = |k: fantoccini::key::Key| char::from(k).to_string();
        c.active_element()
            .await
            .expect("focus")
            .send_keys("admin")
            .await
            .expect("name");
        c.active_element()
            .await
            .expect("focus")
            .send_keys(&keys(fantoccini::key::Key::Tab))
            .await
            .expect("tab");
        c.active_element()
            .await
            .expect("focus")
            .send_keys(ADMIN_PW)
            .await
            .expect("password");
        mark(&c).await;
        c.active_element()
            .await
            .expect("focus")
            .send_keys(&keys(fantoccini::key::Key::Enter))
            .await
            .expect("enter");
        loaded(&c, "planner").await;
        goto(&c, &app, "/").await;
        clean(&c, "overview").await;
        assert!(text(&c, "main").await.contains("No projects yet"));
        // dark mode follows the system
        let background = "return getComputedStyle(document.body).backgroundColor;";
        assert_eq!(
            js(&c, background, vec![]).await,
            json!("rgb(255, 255, 255)")
        );
        c.issue_cmd(Cdp {
            cmd: "Emulation.setEmulatedMedia",
            params: json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
        })
        .await
        .expect("dark");
        assert_eq!(js(&c, background, vec![]).await, json!("rgb(15, 20, 25)"));
        c.issue_cmd(Cdp {
            cmd: "Emulation.setEmulatedMedia",
            params: json!({ "features": [{ "name": "prefers-color-scheme", "value": "light" }] }),
        })
        .await
        .expect("light");
        // the overview with its script, styles and charting library weighs under 200 KB
        let bytes = page_bytes(&c).await;
        assert!(
            bytes > 50_000 && bytes < 200_000,
            "the overview weighs {bytes} bytes"
        );

        // the form: a wrong buffer is shown next to its field, nothing is saved
        goto(&c, &app, "/projects/new").await;
        clean(&c, "form").await;
        let live = [
            ("name", "live weather"),
            ("description", "the simulated stations, live"),
            ("source", "generator:davis?rate=400&stations=3"),
            ("buffer", "lots"),
            ("method", "pool"),
            ("workers", "2"),
            ("sink", &app.file("live.ndjson")),
            ("arrival_rate", "400"),
        ];
        let chain = [
            ("fillna_zeros", ""),
            ("min_max_scaler", "feature_range = [-1, 1]"),
        ];
        fill_project(&c, &live, &chain, "save").await;
        until(
            &c,
            "the field error",
            "return !!document.getElementById('e-buffer');",
            10,
        )
        .await;
        let e = text(&c, "#e-buffer").await;
        assert!(e.contains("lots"), "the error names the value: {e}");
        assert_eq!(
            js(
                &c,
                "return document.getElementById('f-buffer').getAttribute('aria-invalid');",
                vec![]
            )
            .await,
            json!("true")
        );
        clean(&c, "form with an error").await;
        // check, then save
        let mut fixed = live;
        fixed[3] = ("buffer", "50");
        fill_project(&c, &fixed, &chain, "check").await;
        until(
            &c,
            "the check",
            "return !!document.getElementById('verdict');",
            10,
        )
        .await;
        assert!(text(&c, "#verdict").await.contains("Every field is right"));
        fill_project(&c, &fixed, &chain, "save").await;
        loaded(&c, "project").await;
        assert_eq!(text(&c, "h1").await, "live weather");
        clean(&c, "project page").await;

        // start: rows a second above 0 and a chart with points
        press(&c, "form[action$='/start'] button").await;
        until(&c, "rows/s above 0", "var t = document.querySelector('#figures [data-f=rows_in]').textContent; return parseFloat(t) > 0;", 30).await;
        until(
            &c,
            "a chart with points",
            "var n = document.getElementById('chart-data'); return !!n.querySelector('canvas') && parseInt(n.getAttribute('data-points') || '0', 10) > 5;",
            30,
        )
        .await;
        let cols = text(&c, "#columns").await;
        assert!(cols.contains("temp_out"), "numeric columns to pick: {cols}");
        until(&c, "the capacity charts", "return document.querySelectorAll('#chart-rho canvas, #chart-rates canvas, #chart-latency canvas, #chart-backlog canvas, #chart-stages canvas').length === 5;", 10).await;
        clean(&c, "project page, running").await;
        // the overview shows it live
        goto(&c, &app, "/").await;
        until(&c, "the overview's live rate", "var t = document.querySelector('[data-f=rows_in]').textContent; return parseFloat(t) > 0;", 15).await;
        until(
            &c,
            "a sparkline",
            "return !!document.querySelector('[data-f=spark] canvas');",
            10,
        )
        .await;
        clean(&c, "overview, running").await;
        // stop from the overview
        press(&c, "form[action$='/stop'] button").await;
        until(&c, "finished", "var s = document.querySelector('[data-f=state]').textContent; return s === 'finished';", 20).await;

        // a chain that refuses rows: the dead letters with their reasons
        goto(&c, &app, "/projects/new").await;
        fill_project(
            &c,
            &[
                ("name", "messy file"),
                ("source", &app.file("messy.ndjson")),
                ("buffer", "10"),
                ("method", "inline"),
                ("sink", &app.file("messy-out.ndjson")),
                ("dead_letter", &app.file("messy-dead.ndjson")),
            ],
            &[("fillna_zeros", "")],
            "save",
        )
        .await;
        loaded(&c, "project").await;
        press(&c, "form[action$='/start'] button").await;
        until(
            &c,
            "dead letters listed",
            "return document.querySelectorAll('#dead tbody tr').length > 0;",
            20,
        )
        .await;
        let dead = text(&c, "#dead").await;
        assert!(
            dead.contains("prepare"),
            "the step that refused them: {dead}"
        );
        until(
            &c,
            "the count",
            "return document.querySelector('#figures [data-f=dead_letters]').textContent === '5';",
            10,
        )
        .await;
        clean(&c, "dead letters").await;
        c.refresh().await.expect("reload");
        until(&c, "the run in the history", "return document.querySelector('#h-runs').parentNode.textContent.indexOf('finished') >= 0;", 10).await;

        // the planner: profile a chain on the server, see the table and the recommendation
        goto(&c, &app, "/planner").await;
        clean(&c, "planner").await;
        let f = c
            .form(Locator::Css("form:has(button[value=profile])"))
            .await
            .expect("profile form");
        f.set_by_name("buffers", "1,10").await.expect("buffers");
        // plan for the pool (a project without a Redis broker cannot take the queue method)
        f.set_by_name("method", "pool").await.expect("method");
        mark(&c).await;
        f.submit_with(Locator::Css("button[value=profile]"))
            .await
            .expect("profile");
        until(
            &c,
            "the plan",
            "return document.querySelectorAll('#plan tbody tr').length > 0;",
            60,
        )
        .await;
        assert!(text(&c, "#recommendation").await.contains("Buffer"));
        clean(&c, "planner with a plan").await;
        // apply the recommendation to a project: its setting changes
        let recommended = js(
            &c,
            "var f = document.querySelector('form[action=\"/planner/apply\"]'); return [f.buffer.value, f.method.value];",
            vec![],
        )
        .await;
        c.find(Locator::Css("#a-project"))
            .await
            .expect("projects")
            .select_by_label("live weather")
            .await
            .expect("choose");
        press(&c, "form[action='/planner/apply'] button").await;
        loaded(&c, "project").await;
        assert_eq!(text(&c, "h1").await, "live weather");
        let setting = text(&c, ".spec").await;
        let (buffer, method) = (
            recommended[0].as_str().expect("buffer"),
            recommended[1].as_str().expect("method"),
        );
        assert!(
            setting.contains(&format!("buffer\n{buffer}"))
                && setting.contains(&format!("method\n{method}")),
            "applied buffer {buffer}, method {method}: {setting}"
        );

        // at phone width every page fits the screen: nothing wider than the window but the
        // tables, which scroll in their own box
        let phone = driver.client(390, 844).await;
        login(&phone, &app, "admin", ADMIN_PW).await;
        for path in ["/", "/projects/new", "/planner", "/users"] {
            goto(&phone, &app, path).await;
            clean(&phone, path).await;
            let fits = js(
                &phone,
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await;
            let wide = js(&phone, "var w = window.innerWidth; return Array.prototype.filter.call(document.querySelectorAll('body *'), function (e) { return (!e.closest('.table-wrap') || e.classList.contains('table-wrap')) && e.getBoundingClientRect().right > w + 1; }).slice(0, 8).map(function (e) { return e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right); }).concat([document.documentElement.scrollWidth, w]);", vec![]).await;
            assert_eq!(fits, json!(true), "{path} is wider than a phone: {wide}");
        }
        phone.close().await.expect("close");

        // users (admin)
        goto(&c, &app, "/users").await;
        clean(&c, "users").await;
        assert!(text(&c, "#users").await.contains("admin"));

        // log out: the session ends, pages lead to the login again
        press(&c, "form[action='/logout'] button").await;
        loaded(&c, "login").await;
        goto(&c, &app, "/").await;
        assert!(c
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/login"));
        c.close().await.expect("close");
    });
}

#[test]
fn payloads_in_every_form_field_and_in_sensor_rows_stay_text() {
    assert!(streamprep_testkit::XSS_PAYLOADS.len() >= 40);
    let app = App::start();
    let driver = Driver::start();
    let dir = tempfile::tempdir().expect("tmp");
    let broker = super::mqtt::Broker::start(super::mqtt::Kind::Mosquitto, dir.path());
    run(async {
        let c = driver.client(1280, 800).await;
        login(&c, &app, "admin", ADMIN_PW).await;
        // a name typed at the login page comes back as the field's value, not markup
        press(&c, "form[action='/logout'] button").await;
        loaded(&c, "login").await;
        for p in streamprep_testkit::XSS_PAYLOADS.iter().take(5) {
            let f = c.form(Locator::Css("form")).await.expect("the login form");
            f.set_by_name("name", p).await.expect("name");
            f.set_by_name("password", "wrong password")
                .await
                .expect("password");
            mark(&c).await;
            f.submit().await.expect("submit");
            until(
                &c,
                "the login error",
                "return !window.__stale && !!document.getElementById('login-error');",
                10,
            )
            .await;
            assert_eq!(
                js(
                    &c,
                    "return document.getElementById('f-name').value;",
                    vec![]
                )
                .await,
                json!(p)
            );
            clean(&c, &format!("login with {p}")).await;
        }
        login(&c, &app, "admin", ADMIN_PW).await;

        let text_fields: Vec<&str> = [
            "name",
            "description",
            "source",
            "buffer",
            "max_latency",
            "max_wait",
            "workers",
            "broker",
            "in_flight",
            "sink",
            "dead_letter",
            "max_row",
            "csv_sep",
            "rate",
            "arrival_rate",
        ]
        .to_vec();
        for (i, p) in streamprep_testkit::XSS_PAYLOADS.iter().enumerate() {
            // every text field holds the payload: the form comes back with errors, the payload
            // in each field's value and in the messages as text
            goto(&c, &app, "/projects/new").await;
            let all: Vec<(&str, &str)> = text_fields.iter().map(|f| (*f, *p)).collect();
            fill_project(&c, &all, &[("fillna_zeros", p)], "save").await;
            until(&c, "the form again", "return !window.__stale && document.body.dataset.page === 'form' && !!document.querySelector('.field-error, #general-errors');", 10).await;
            clean(&c, &format!("form with {p}")).await;
            let values = js(
                &c,
                "return Array.prototype.map.call(document.querySelectorAll('.project-form input[name]:not([type=hidden]), .project-form textarea'), function (i) { return [i.name, i.value]; });",
                vec![],
            )
            .await;
            for v in values.as_array().expect("values") {
                let name = v[0].as_str().unwrap_or_default();
                if text_fields.contains(&name) || name == "options" && v[1] != json!("") {
                    assert_eq!(v[1], json!(p), "{name} holds the payload as typed");
                }
            }
            let errors = js(&c, "return Array.prototype.map.call(document.querySelectorAll('.field-error, #general-errors'), function (e) { return e.textContent; }).join(' ');", vec![]).await;
            assert!(
                errors.as_str().unwrap_or_default().contains(p),
                "the errors quote the payload as text: {errors}"
            );
            // a project named and described with the payload: its page and the overview
            let name = format!("{p} #{i}");
            goto(&c, &app, "/projects/new").await;
            fill_project(
                &c,
                &[
                    ("name", &name),
                    ("description", p),
                    ("source", "generator:davis?rows=10"),
                    ("buffer", "10"),
                    ("sink", &app.file(&format!("x{i}.ndjson"))),
                ],
                &[("fillna_zeros", "")],
                "save",
            )
            .await;
            loaded(&c, "project").await;
            clean(&c, &format!("project page of {p}")).await;
            assert_eq!(text(&c, "h1").await, name.trim());
            assert_eq!(
                js(
                    &c,
                    "return document.querySelector('h1').textContent;",
                    vec![]
                )
                .await,
                json!(name)
            );
            assert_eq!(
                js(
                    &c,
                    "return document.querySelector('.heading p.muted').textContent;",
                    vec![]
                )
                .await,
                json!(p)
            );
            // the planner's fields echo the payload as values too
            if i % 8 == 0 {
                goto(&c, &app, "/planner").await;
                let f = c
                    .form(Locator::Css("form:has(button[value=plan])"))
                    .await
                    .expect("plan form");
                f.set_by_name("arrival_rate", p).await.expect("rate");
                mark(&c).await;
                f.submit_with(Locator::Css("button[value=plan]"))
                    .await
                    .expect("plan");
                until(
                    &c,
                    "the planner's error",
                    "return !window.__stale && !!document.getElementById('planner-error');",
                    10,
                )
                .await;
                clean(&c, &format!("planner with {p}")).await;
                assert_eq!(
                    js(
                        &c,
                        "return document.getElementById('p-rate').value;",
                        vec![]
                    )
                    .await,
                    json!(p)
                );
            }
            // a user named with the payload (names are at most 64 characters)
            let user: String = p.chars().take(60).collect();
            goto(&c, &app, "/users").await;
            let f = c
                .form(Locator::Css("form[action='/users']"))
                .await
                .expect("add form");
            f.set_by_name("name", &user).await.expect("name");
            f.set_by_name("password", "a long enough password")
                .await
                .expect("pw");
            mark(&c).await;
            f.submit().await.expect("add");
            loaded(&c, "users").await;
            clean(&c, &format!("users with {p}")).await;
            let names = js(&c, "return Array.prototype.map.call(document.querySelectorAll('#users tbody tr td:first-child'), function (t) { return t.firstChild.textContent; });", vec![]).await;
            assert!(
                names.as_array().expect("names").contains(&json!(user)),
                "{user} listed as text: {names}"
            );
        }
        goto(&c, &app, "/").await;
        clean(&c, "overview with every payload").await;
        let names = js(&c, "return Array.prototype.map.call(document.querySelectorAll('tr[data-id] th a'), function (a) { return a.textContent; });", vec![]).await;
        for (i, p) in streamprep_testkit::XSS_PAYLOADS.iter().enumerate() {
            assert!(
                names
                    .as_array()
                    .expect("names")
                    .contains(&json!(format!("{p} #{i}"))),
                "{p} in the overview"
            );
        }

        // sensor rows over MQTT whose column names and string values are the payloads
        goto(&c, &app, "/projects/new").await;
        fill_project(
            &c,
            &[
                ("name", "sensors"),
                ("source", &format!("{}?qos=1", broker.url("xss"))),
                ("source_format", "ndjson"),
                ("buffer", "1"),
                ("max_wait", "10ms"),
                ("key", "who"),
                ("sink", &app.file("sensors.ndjson")),
            ],
            &[("fillna_zeros", "")],
            "save",
        )
        .await;
        loaded(&c, "project").await;
        press(&c, "form[action$='/start'] button").await;
        until(
            &c,
            "running",
            "return document.getElementById('state').textContent === 'running';",
            20,
        )
        .await;
        let mut row = serde_json::Map::new();
        for (i, p) in streamprep_testkit::XSS_PAYLOADS.iter().enumerate() {
            row.insert(p.to_string(), json!(p));
            row.insert(format!("{p}#{i}"), json!(i as f64 + 0.5));
        }
        // keyed by "who", whose values are payloads too (the busiest keys show them)
        let rows: Vec<String> = streamprep_testkit::XSS_PAYLOADS[..10]
            .iter()
            .map(|p| {
                let mut r = row.clone();
                r.insert("who".into(), json!(p));
                Value::Object(r).to_string()
            })
            .collect();
        let publish_one = |row: &str| {
            let out = Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &broker.port.to_string(),
                    "-t",
                    "xss",
                    "-q",
                    "1",
                    "-m",
                    row,
                ])
                .output()
                .expect("mosquitto_pub");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let publish = || rows.iter().for_each(|r| publish_one(r));
        publish();
        let deadline = Instant::now() + Duration::from_secs(20);
        while js(
            &c,
            "return document.querySelectorAll('#latest tbody tr').length > 0;",
            vec![],
        )
        .await
            != json!(true)
        {
            assert!(Instant::now() < deadline, "the rows never reached the page");
            publish();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        clean(&c, "project page with payload columns").await;
        let heads = js(&c, "return Array.prototype.map.call(document.querySelectorAll('#latest thead th'), function (t) { return t.textContent; });", vec![]).await;
        let cells = js(&c, "return Array.prototype.map.call(document.querySelectorAll('#latest tbody tr:first-child td'), function (t) { return t.textContent; });", vec![]).await;
        let boxes = js(&c, "return Array.prototype.map.call(document.querySelectorAll('#columns label'), function (l) { return l.textContent.trim(); });", vec![]).await;
        for (i, p) in streamprep_testkit::XSS_PAYLOADS.iter().enumerate() {
            assert!(
                heads.as_array().expect("heads").contains(&json!(p)),
                "column {p} as text: {heads}"
            );
            assert!(
                cells.as_array().expect("cells").contains(&json!(p)),
                "value {p} as text"
            );
            let numeric = format!("{p}#{i}");
            assert!(
                boxes
                    .as_array()
                    .expect("boxes")
                    .contains(&json!(numeric.trim())),
                "numeric column {numeric} to pick, as text"
            );
        }
        // the inspector's busiest keys: payload key values, shown as text
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            publish();
            let keys = js(&c, "return Array.prototype.map.call(document.querySelectorAll('#busiest tbody tr td:first-child'), function (t) { return t.textContent; });", vec![]).await;
            let shown = keys
                .as_array()
                .expect("keys")
                .iter()
                .filter(|k| {
                    streamprep_testkit::XSS_PAYLOADS[..10]
                        .iter()
                        .any(|p| json!(p) == **k)
                })
                .count();
            if shown > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no busiest keys: {keys}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        clean(&c, "project page with payload keys").await;
        c.close().await.expect("close");
    });
}

/// Bytes the current page took: the document and every resource it loaded (cached or not).
pub async fn page_bytes(c: &Client) -> u64 {
    js(
        c,
        "var n = performance.getEntriesByType('navigation')[0];
         var total = n.encodedBodySize;
         performance.getEntriesByType('resource').forEach(function (r) { total += r.encodedBodySize; });
         return total;",
        vec![],
    )
    .await
    .as_u64()
    .expect("bytes")
}

/// The web app's address and the demo's password in the line `streamprep demo` prints.
pub fn demo_line(line: &str) -> Option<(String, String)> {
    let rest = line.split("the app is at http://").nth(1)?;
    let addr = rest.split('/').next()?.to_string();
    let pw = line
        .split("the password ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    Some((addr, pw))
}

impl App {
    /// `streamprep demo` publishing `rate` rows a second, on free ports: the app and the
    /// demo user's password.
    #[allow(clippy::zombie_processes)] // App's drop kills and waits for it
    pub fn demo(rate: &str) -> (App, String) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut child = bin()
            .args(["demo", "--rate", rate, "--addr", "127.0.0.1:0"])
            .args(["--port", &free_port().to_string()])
            .arg("--sink")
            .arg(format!("file:{}", dir.path().join("demo.ndjson").display()))
            .arg("--dead-letter")
            .arg(format!("file:{}", dir.path().join("dead.ndjson").display()))
            .stderr(Stdio::piped())
            .spawn()
            .expect("demo");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        loop {
            let mut line = String::new();
            if err.read_line(&mut line).expect("read") == 0 {
                let _ = child.wait();
                panic!("the demo stopped");
            }
            if let Some((addr, pw)) = demo_line(&line) {
                std::thread::spawn(move || for _ in err.lines() {});
                return (App { child, addr, dir }, pw);
            }
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The benchmark of the pages (bench/pages.sh runs it on a release build): publish-to-chart
/// latency at 1,000 rows/s in the demo, the overview's weight and render time, and the
/// screenshots in docs/ (the history page's from a private PostgreSQL).
#[test]
#[ignore = "a benchmark: bench/pages.sh"]
fn bench_pages_latency_weight_and_screenshots() {
    let (app, password) = App::demo("1000");
    let driver = Driver::start();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&shots).expect("docs/screenshots");
    let shot = |name: &str, png: Vec<u8>| std::fs::write(shots.join(name), png).expect("write");
    run(async {
        let c = driver.client(1280, 800).await;
        login(&c, &app, "demo", &password).await;
        // the overview: weight and time to render, five fresh loads
        let mut times = Vec::new();
        for _ in 0..5 {
            mark(&c).await;
            c.refresh().await.expect("reload");
            loaded(&c, "overview").await;
            let t = js(
                &c,
                "var n = performance.getEntriesByType('navigation')[0];
                 var p = performance.getEntriesByName('first-contentful-paint')[0];
                 return [n.domContentLoadedEventEnd, n.loadEventEnd, p ? p.startTime : null];",
                vec![],
            )
            .await;
            times.push(t);
        }
        let bytes = page_bytes(&c).await;
        println!("overview: {bytes} bytes (document + resources); [DOMContentLoaded, load, first contentful paint] ms per load: {times:?}");
        until(
            &c,
            "a sparkline",
            "return !!document.querySelector('[data-f=spark] canvas');",
            15,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        shot("overview.png", c.screenshot().await.expect("png"));
        // the project page: its charts after a minute, and the latency of each point
        press(&c, "tr[data-id] th a").await;
        loaded(&c, "project").await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let lat = js(&c, "return window.streamprepLatencies;", vec![]).await;
        let mut lat: Vec<f64> = lat
            .as_array()
            .expect("latencies")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        lat.sort_by(f64::total_cmp);
        println!(
            "publish to chart at 1000 rows/s: {} points, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "rows/s in on the page: {}",
            text(&c, "#figures [data-f=rows_in]").await
        );
        c.set_window_size(1280, 1700).await.expect("size");
        js(&c, "window.scrollTo(0, 0); return true;", vec![]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        shot("project.png", c.screenshot().await.expect("png"));
        c.set_window_size(1280, 800).await.expect("size");
        // the form with an error
        goto(&c, &app, "/projects/new").await;
        fill_project(
            &c,
            &[
                ("name", "line 3 vibration"),
                ("source", "mqtt://127.0.0.1:1883/line3?qos=1"),
                ("source_format", "ndjson"),
                ("buffer", "lots"),
                ("sink", "file:/tmp/out.ndjson"),
            ],
            &[
                ("fillna_mean", ""),
                ("min_max_scaler", "feature_range = [-1, 1]"),
            ],
            "save",
        )
        .await;
        until(
            &c,
            "the errors",
            "return !window.__stale && !!document.querySelector('.field-error');",
            10,
        )
        .await;
        js(&c, "document.getElementById('field-buffer').scrollIntoView({block: 'center'}); return true;", vec![]).await;
        shot("form-error.png", c.screenshot().await.expect("png"));
        // the planner with a plan
        goto(&c, &app, "/planner").await;
        let f = c
            .form(Locator::Css("form:has(button[value=profile])"))
            .await
            .expect("form");
        f.set_by_name("buffers", "1,10,100,1000")
            .await
            .expect("buffers");
        f.set_by_name("method", "pool").await.expect("method");
        mark(&c).await;
        f.submit_with(Locator::Css("button[value=profile]"))
            .await
            .expect("profile");
        until(
            &c,
            "the plan",
            "return !window.__stale && document.querySelectorAll('#plan tbody tr').length > 0;",
            120,
        )
        .await;
        js(
            &c,
            "document.getElementById('h-best').scrollIntoView(); return true;",
            vec![],
        )
        .await;
        shot("planner.png", c.screenshot().await.expect("png"));
        // the history page: six hours of two beam positions at 10 Hz in a private PostgreSQL,
        // 2,000 points of each (MinMaxLTTB)
        let pg = streamprep_testkit::postgres::Postgres::start();
        pg.psql(
            "CREATE TABLE cbpm3 AS SELECT '2026-03-01T00:00:00Z'::timestamptz + n * interval '100 milliseconds' AS ts, \
             0.8 * sin(n / 9000.0) + 0.05 * sin(n / 37.0) + 0.02 * random() AS x1, \
             0.5 * cos(n / 23000.0) - 0.3 + 0.03 * random() AS x2 FROM generate_series(0, 215999) AS n",
        );
        goto(&c, &app, "/history").await;
        loaded(&c, "history").await;
        ask_history(
            &c,
            json!({
                "source": format!("{}?table=cbpm3", pg.url()),
                "from": "2026-03-01T00:00:00Z", "to": "2026-03-01T06:00:00Z",
                "columns": "x1,x2", "interval": "", "points": "2000"
            }),
        )
        .await;
        history_done(&c, "the history chart", "true", 60).await;
        c.set_window_size(1280, 1000).await.expect("size");
        js(
            &c,
            "document.getElementById('h-progress').parentNode.scrollIntoView({block: 'start'}); return true;",
            vec![],
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        shot("history.png", c.screenshot().await.expect("png"));
        // and at phone width: the chart follows the page's width
        c.set_window_size(390, 844).await.expect("size");
        tokio::time::sleep(Duration::from_secs(2)).await;
        js(
            &c,
            "document.getElementById('h-progress').parentNode.scrollIntoView({block: 'start'}); return true;",
            vec![],
        )
        .await;
        shot("history-phone.png", c.screenshot().await.expect("png"));
        c.set_window_size(1280, 800).await.expect("size");
        drop(pg);
        // the overview at phone width
        let phone = driver.client(390, 844).await;
        login(&phone, &app, "demo", &password).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        shot("overview-phone.png", phone.screenshot().await.expect("png"));
        phone.close().await.expect("close");
        c.close().await.expect("close");
    });
    drop(app);
}

/// The history page end to end (seed 002): a table in a private PostgreSQL, a query at one
/// second, the job's progress and then the chart; a span selected on the chart asks again for
/// that span (fewer points over less time); no CSP violation on the way.
#[test]
fn history_query_chart_and_zoom() {
    let pg = streamprep_testkit::postgres::Postgres::start();
    pg.psql(
        "CREATE TABLE beam AS SELECT '2026-03-01T00:00:00Z'::timestamptz + n * interval '100 milliseconds' AS ts, \
         sin(n / 50.0) AS x FROM generate_series(0, 5999) AS n",
    );
    let app = App::start();
    let driver = Driver::start();
    run(async {
        let c = driver.client(1280, 800).await;
        login(&c, &app, "admin", ADMIN_PW).await;
        goto(&c, &app, "/history").await;
        loaded(&c, "history").await;
        clean(&c, "history").await;
        ask_history(
            &c,
            json!({
                "source": format!("{}?table=beam", pg.url()),
                "from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:10:00Z",
                "columns": "x", "interval": "1s", "points": ""
            }),
        )
        .await;
        history_done(
            &c,
            "the job's chart",
            "c.getAttribute('data-points') === '600'",
            30,
        )
        .await;
        assert!(text(&c, "#h-progress").await.contains("6000 rows read"));
        assert_eq!(
            js(
                &c,
                "return document.querySelector(\"form[action$='/cancel']\").hidden;",
                vec![]
            )
            .await,
            json!(true),
            "a finished job offers no cancel"
        );
        let first = c.current_url().await.expect("url").to_string();
        // select the chart's left half: the page asks for that span
        let rect = js(
            &c,
            "var o = document.querySelector('#chart-history .u-over'); o.scrollIntoView({block: 'center'}); var b = o.getBoundingClientRect(); return [b.left, b.top, b.width, b.height];",
            vec![],
        )
        .await;
        let n = |i: usize| rect[i].as_f64().expect("a number");
        let r = (n(0), n(1), n(2), n(3));
        use fantoccini::actions::InputSource as _;
        let actions = fantoccini::actions::MouseActions::new("mouse".into())
            .then(fantoccini::actions::PointerAction::MoveTo {
                duration: None,
                x: r.0 + 5.0,
                y: r.1 + r.3 / 2.0,
            })
            .then(fantoccini::actions::PointerAction::Down {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            })
            .then(fantoccini::actions::PointerAction::MoveTo {
                duration: Some(std::time::Duration::from_millis(100)),
                x: r.0 + r.2 / 2.0,
                y: r.1 + r.3 / 2.0,
            })
            .then(fantoccini::actions::PointerAction::Up {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            });
        mark(&c).await;
        c.perform_actions(actions).await.expect("drag");
        loaded(&c, "history").await;
        history_done(
            &c,
            "the zoomed chart",
            "Number(c.getAttribute('data-points')) > 100 && Number(c.getAttribute('data-points')) < 400",
            30,
        )
        .await;
        assert_ne!(c.current_url().await.expect("url").to_string(), first);
        clean(&c, "history, zoomed").await;
        // narrowed to a phone's width, the chart follows: nothing wider than the screen
        c.set_window_size(390, 844).await.expect("phone width");
        until(
            &c,
            "the chart at phone width",
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            10,
        )
        .await;
        c.close().await.expect("close");
    });
}

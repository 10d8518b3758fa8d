//! `exec`: the user's own code as a step (seed 004's black box). A long-lived process runs the
//! user's command; each message goes to it as one frame on its stdin and comes back as one
//! frame on its stdout.
//!
//! **Wire protocol** (any language can implement it; `python/streamprep_step.py` does):
//! a frame is a 4-byte big-endian length `n`, then `n` bytes: one kind byte and the payload.
//! streamprep sends `D` + the message; the process answers each frame with one frame, `D` + the
//! result (any number of rows, any columns), or `E` + a UTF-8 reason (that message becomes a
//! dead letter with the reason; the process goes on). The payload's format is the step's
//! `format`, also in the process's environment as `STREAMPREP_FORMAT`: `arrow` (an Arrow IPC
//! stream: schema, record batches, end), `csv` (a header line, then rows) or `ndjson` (one
//! JSON object a line). The process ends when its stdin closes.
//!
//! One process per chain instance: one for `inline`, one per worker of the pool, one per
//! concurrency slot of each queue worker. It starts with the first message. A process that
//! exits, crashes, answers garbage or takes longer than `timeout` on a message is killed if
//! need be and started again with the next message; that message is a dead letter with the
//! reason and the tail of the process's stderr. Its stderr goes to the log, line by line, with
//! the process named. The chain's end (the run stopping) closes its stdin, waits for it, then
//! kills it. Processes get a process group of their own, so a Ctrl-C at the terminal reaches
//! streamprep only, which then ends them this way.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_schema::SchemaRef;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use streamprep_core::{Batch, Step, StepError};

use crate::registry::Options;

const NAME: &str = "exec";
/// The largest answer taken (an answer above it is garbage: a print on stdout, say).
pub const MAX_FRAME: usize = 1 << 30;
/// Lines of a process's stderr kept for a dead letter's reason.
const TAIL: usize = 20;
/// How long a process has to end once its stdin is closed.
const GRACE: Duration = Duration::from_secs(5);

/// Processes started so far in this program (they are named `exec-N`).
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// How a message travels to the process and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An Arrow IPC stream (types kept exactly).
    Arrow,
    /// CSV with a header line.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

impl Format {
    fn word(self) -> &'static str {
        match self {
            Format::Arrow => "arrow",
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// The step's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The frames' format.
    pub format: Format,
    /// The longest a message may take.
    pub timeout: Duration,
}

impl ExecConfig {
    /// From the step's options: `command` (a list of strings; the program is looked up on
    /// PATH now, so a command that cannot start is refused before anything runs), `format`,
    /// `timeout` ("30s", "500ms", "2m").
    pub fn from_options(o: &Options) -> Result<Self, String> {
        let command = o.strings("command");
        let Some(program) = command.first() else {
            return Err(
                "command: give the program and its arguments, e.g. [\"python3\", \"classify.py\"]"
                    .into(),
            );
        };
        if resolve(program).is_none() {
            return Err(format!(
                "command: '{program}' is not a program this host can run (not found on PATH, or not executable)"
            ));
        }
        let format = match o.choice("format") {
            "csv" => Format::Csv,
            "ndjson" => Format::Ndjson,
            _ => Format::Arrow,
        };
        let timeout = parse_duration(o.text("timeout")).ok_or_else(|| {
            format!(
                "timeout = {:?}: give a duration such as \"30s\", \"500ms\" or \"2m\"",
                o.text("timeout")
            )
        })?;
        Ok(ExecConfig {
            command,
            format,
            timeout,
        })
    }
}

/// A duration more than 0 (`30s`, `500ms`, `2m`), as users write durations elsewhere.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    streamprep_core::parse_duration(s)
        .ok()
        .filter(|d| !d.is_zero())
}

/// The program's path: as given when it holds a `/`, else the first executable on PATH.
fn resolve(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| executable(p))
    })
}

/// A running process.
struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Frames read from its stdout (or why reading stopped).
    frames: Receiver<Result<Vec<u8>, String>>,
    /// The last lines of its stderr.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Process {
    fn start(cfg: &ExecConfig) -> Result<Process, String> {
        use std::os::unix::process::CommandExt;
        let name = format!("exec-{}", STARTED.fetch_add(1, Ordering::Relaxed) + 1);
        let mut child = Command::new(&cfg.command[0])
            .args(&cfg.command[1..])
            .env("STREAMPREP_FORMAT", cfg.format.word())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cfg.command))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, frames) = crossbeam_channel::bounded(1);
        if let Some(mut out) = stdout {
            let who = name.clone();
            std::thread::Builder::new()
                .name(format!("streamprep-{who}-out"))
                .spawn(move || loop {
                    let frame = read_frame(&mut out);
                    let end = frame.is_err();
                    if tx.send(frame).is_err() || end {
                        return;
                    }
                })
                .map_err(|e| format!("{name}: {e}"))?;
        }
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL)));
        if let Some(err) = stderr {
            let (who, kept) = (name.clone(), tail.clone());
            // its lines belong to the run that started the process (the run's log shows them)
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name(format!("streamprep-{who}-err"))
                .spawn(move || {
                    let _run = span.enter();
                    for line in std::io::BufReader::new(err).lines() {
                        let Ok(line) = line else { return };
                        tracing::info!(target: "streamprep::exec", "{who}: {line}");
                        let mut t = kept.lock().unwrap_or_else(|e| e.into_inner());
                        if t.len() == TAIL {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                })
                .map_err(|e| format!("{name}: {e}"))?;
        }
        tracing::debug!(target: "streamprep::exec", "{name}: started {:?}", cfg.command);
        Ok(Process {
            name,
            stdin: child.stdin.take(),
            child,
            frames,
            tail,
        })
    }

    /// The last lines of its stderr, for a reason.
    fn stderr_tail(&self) -> String {
        // let the reader take what the process wrote just before it went
        std::thread::sleep(Duration::from_millis(20));
        let t = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.is_empty() {
            "(stderr empty)".into()
        } else {
            format!(
                "stderr: {}",
                t.iter().cloned().collect::<Vec<_>>().join(" | ")
            )
        }
    }

    /// How it ended (after it did).
    fn status(&mut self) -> String {
        for _ in 0..50 {
            if let Ok(Some(st)) = self.child.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                return match (st.code(), st.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (_, Some(s)) => format!("was killed by signal {s}"),
                    _ => "ended".into(),
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        "closed its stdout".into()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    /// Close its stdin, give it [`GRACE`] to end, then kill it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + GRACE;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!(target: "streamprep::exec", "{}: still running {GRACE:?} after its input ended: killed", self.name);
        self.kill();
    }
}

/// One frame: `Ok(body)`, or why there is none (end of stream, garbage, an error).
fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|_| "the process closed its stdout".to_string())?;
    let n = u32::from_be_bytes(len) as usize;
    if n == 0 || n > MAX_FRAME {
        return Err(format!(
            "the process wrote something that is not a frame (a length of {n} bytes: a print to stdout?)"
        ));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)
        .map_err(|_| "the process closed its stdout within a frame".to_string())?;
    Ok(body)
}

/// The `exec` step.
pub struct Exec {
    cfg: ExecConfig,
    process: Option<Process>,
    /// The columns of the answers, by the columns of the message: a later answer to a message
    /// with the same columns must have the same (the latest [`SCHEMAS_KEPT`] pairs).
    schemas: VecDeque<(SchemaRef, SchemaRef)>,
}

/// Pairs of (message columns, answer columns) an `exec` step remembers.
const SCHEMAS_KEPT: usize = 64;

impl Exec {
    /// A step that starts its process with the first message.
    pub fn new(cfg: ExecConfig) -> Self {
        Exec {
            cfg,
            process: None,
            schemas: VecDeque::new(),
        }
    }

    /// Build from registry options.
    pub fn from_options(o: &Options) -> Result<Self, String> {
        ExecConfig::from_options(o).map(Exec::new)
    }

    fn bad(reason: String) -> StepError {
        StepError::BadInput { step: NAME, reason }
    }

    /// The process is gone or useless: kill it (a new one starts with the next message) and
    /// say why, with its stderr.
    fn lost(&mut self, what: String) -> StepError {
        let Some(mut p) = self.process.take() else {
            return Self::bad(what);
        };
        let tail = p.stderr_tail();
        p.kill();
        let name = p.name.clone();
        // its drop would wait for it: it is dead already
        drop(p);
        tracing::warn!(target: "streamprep::exec", "{name}: {what}; a new process takes the next message");
        Self::bad(format!("{name} {what}; {tail}"))
    }
}

impl Step for Exec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn columns_from_empty(&self) -> bool {
        false
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let input = batch.schema();
        let payload = encode(&batch, self.cfg.format).map_err(|e| StepError::Internal {
            step: NAME,
            reason: format!("encoding the message: {e}"),
        })?;
        if self.process.is_none() {
            self.process = Some(Process::start(&self.cfg).map_err(Self::bad)?);
        }
        let p = self.process.as_mut().expect("started above");
        let len = u32::try_from(payload.len() + 1)
            .ok()
            .filter(|n| (*n as usize) <= MAX_FRAME)
            .ok_or_else(|| {
                Self::bad(format!(
                    "the message is {} bytes, more than a frame takes ({MAX_FRAME})",
                    payload.len()
                ))
            })?;
        let sent = p
            .stdin
            .as_mut()
            .map_or(Err(std::io::ErrorKind::BrokenPipe.into()), |w| {
                w.write_all(&len.to_be_bytes())
                    .and_then(|()| w.write_all(b"D"))
                    .and_then(|()| w.write_all(&payload))
                    .and_then(|()| w.flush())
            });
        if sent.is_err() {
            let status = p.status();
            return Err(self.lost(format!("{status} before taking the message")));
        }
        let answer = match p.frames.recv_timeout(self.cfg.timeout) {
            Ok(Ok(frame)) => frame,
            Ok(Err(why)) => {
                let status = if why.contains("closed its stdout") {
                    p.status()
                } else {
                    why
                };
                return Err(self.lost(format!("{status} on this message")));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.lost(format!(
                    "gave no answer within {:?}: killed",
                    self.cfg.timeout
                )))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(self.lost("stopped answering".into()))
            }
        };
        match answer.split_first() {
            Some((b'D', body)) => {
                let known = self
                    .schemas
                    .iter()
                    .find(|(i, _)| same_columns(i, &input))
                    .map(|(_, o)| o.clone());
                let out = decode(body, self.cfg.format, known.as_ref()).map_err(|e| {
                    Self::bad(format!(
                        "the answer is not {} data: {e}",
                        self.cfg.format.word()
                    ))
                })?;
                match known {
                    None => {
                        if self.schemas.len() == SCHEMAS_KEPT {
                            self.schemas.pop_front();
                        }
                        self.schemas.push_back((input, out.schema()));
                    }
                    Some(s) if !same_columns(&s, &out.schema()) => {
                        return Err(Self::bad(format!(
                            "the process answered with the columns {:?}, earlier (to messages with the same columns) with {:?}",
                            names(&out.schema()),
                            names(&s)
                        )))
                    }
                    Some(_) => {}
                }
                Ok(out)
            }
            Some((b'E', reason)) => Err(Self::bad(format!(
                "the process refused the message: {}",
                String::from_utf8_lossy(reason).trim()
            ))),
            _ => Err(self.lost("answered with a frame of an unknown kind (not D or E)".into())),
        }
    }
}

fn names(s: &SchemaRef) -> Vec<String> {
    s.fields().iter().map(|f| f.name().clone()).collect()
}

fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// A batch as the frame's payload.
fn encode(batch: &Batch, format: Format) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut out = Vec::new();
    match format {
        Format::Arrow => {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
            w.write(batch)?;
            w.finish()?;
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            w.write(batch)?;
        }
        Format::Ndjson => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
            w.write(batch)?;
            w.finish()?;
        }
    }
    Ok(out)
}

/// An answer's payload as a batch; CSV and NDJSON take the first answer's columns once known.
fn decode(
    body: &[u8],
    format: Format,
    known: Option<&SchemaRef>,
) -> Result<Batch, arrow_schema::ArrowError> {
    use arrow_schema::{ArrowError, Schema};
    let concat = |schema: SchemaRef, batches: Vec<Batch>| {
        arrow_select::concat::concat_batches(&schema, &batches)
    };
    match format {
        Format::Arrow => {
            let r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)?;
            let schema = r.schema();
            let batches = r.collect::<Result<Vec<_>, _>>()?;
            concat(schema, batches)
        }
        Format::Csv => {
            let schema = match known {
                Some(s) => s.clone(),
                None => {
                    let (s, _) = arrow_csv::reader::Format::default()
                        .with_header(true)
                        .infer_schema(std::io::Cursor::new(body), None)?;
                    Arc::new(s)
                }
            };
            let r = arrow_csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .build(std::io::Cursor::new(body))?;
            concat(schema, r.collect::<Result<Vec<_>, _>>()?)
        }
        Format::Ndjson => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Batch::new_empty(
                    known.cloned().unwrap_or_else(|| Arc::new(Schema::empty())),
                ));
            }
            let schema = match known {
                Some(s) => s.clone(),
                None => {
                    let (s, _) = arrow_json::reader::infer_json_schema_from_seekable(
                        std::io::Cursor::new(body),
                        None,
                    )?;
                    Arc::new(s)
                }
            };
            let r = arrow_json::ReaderBuilder::new(schema.clone())
                .build(std::io::Cursor::new(body))
                .map_err(|e| ArrowError::JsonError(e.to_string()))?;
            concat(schema, r.collect::<Result<Vec<_>, _>>()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        streamprep_testkit::batch_from_json(r#"[{"a": 1.5, "s": "x"}, {"a": null, "s": "y"}]"#)
    }

    fn config(command: &[&str], format: Format, timeout_ms: u64) -> ExecConfig {
        ExecConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            format,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn cat_echoes_each_frame_so_the_step_is_the_identity_in_every_format() {
        for format in [Format::Arrow, Format::Csv, Format::Ndjson] {
            let mut step = Exec::new(config(&["cat"], format, 5000));
            for _ in 0..3 {
                let out = step.apply(batch()).expect("echoed");
                assert_eq!(out.num_rows(), 2, "{format:?}");
                assert_eq!(
                    streamprep_testkit::batch_to_json(&out),
                    streamprep_testkit::batch_to_json(&batch()),
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn a_process_that_dies_or_hangs_costs_one_message_and_is_replaced() {
        // `head -c 0` reads nothing and exits: the message is refused, the next one too
        let mut step = Exec::new(config(
            &["sh", "-c", "echo dying >&2; exit 3"],
            Format::Arrow,
            5000,
        ));
        let e = step.apply(batch()).expect_err("the process died");
        let text = e.to_string();
        assert!(
            text.contains("exited with status 3") || text.contains("before taking"),
            "{text}"
        );
        // a process that never answers: killed after the timeout
        let mut step = Exec::new(config(&["sleep", "30"], Format::Arrow, 200));
        let started = std::time::Instant::now();
        let e = step.apply(batch()).expect_err("no answer");
        assert!(e.to_string().contains("no answer within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // garbage on stdout
        let mut step = Exec::new(config(
            &["sh", "-c", "echo hello there; sleep 5"],
            Format::Arrow,
            2000,
        ));
        let e = step.apply(batch()).expect_err("garbage");
        assert!(e.to_string().contains("not a frame"), "{e}");
    }

    #[test]
    fn options_are_checked_before_anything_runs() {
        assert!(resolve("sh").is_some());
        assert!(resolve("no-such-program-streamprep").is_none());
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}

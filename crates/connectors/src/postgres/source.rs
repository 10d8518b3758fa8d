//! The PostgreSQL source: a table's rows in a time range (or a query's), read through
//! `COPY (SELECT ...) TO STDOUT (FORMAT binary)` on a thread of its own, decoded into Arrow
//! batches of the buffer's size and handed over two at a time, so memory stays the same
//! whatever the range. Columns are read as float64, int64, boolean or text (timestamps as ISO
//! 8601 text); other types are cast to one of those in the SELECT. A stop cancels the query on
//! the server (not only the connection). With `follow`, once the range is read, rows newer
//! than the last one (by `time_column`) are read every second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use postgres::types::Type;
use streamprep_core::{Batch, IoError, Read, Source, SourceKind};

use super::copy::{Decoder, PgType};
use super::{pg_error, quoted, PgUrl};

/// Reads a query's rows as batches.
pub struct PgSource {
    url: PgUrl,
    stop: Arc<AtomicBool>,
    rx: Option<Receiver<Result<Batch, String>>>,
    cancel: Arc<std::sync::Mutex<Option<postgres::CancelToken>>>,
    done: Arc<AtomicBool>,
}

impl PgSource {
    /// A source of `url` (connected when first read; a bad address or query is an error then,
    /// before any row).
    pub fn open(url: &PgUrl, stop: Arc<AtomicBool>) -> Result<Self, IoError> {
        url.select().map_err(IoError::Protocol)?;
        Ok(PgSource {
            url: url.clone(),
            stop,
            rx: None,
            cancel: Arc::default(),
            done: Arc::new(AtomicBool::new(false)),
        })
    }

    fn start(&mut self, max_rows: usize) -> Result<(), IoError> {
        let mut client = self.url.connect()?;
        *self.cancel.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.cancel_token());
        let (names, types, select) = describe(&mut client, &self.url)?;
        let (tx, rx) = bounded(2);
        let (url, stop, done) = (self.url.clone(), self.stop.clone(), self.done.clone());
        std::thread::Builder::new()
            .name("streamprep-pg-source".into())
            .spawn(move || {
                let r = read_all(
                    &mut client,
                    &url,
                    &names,
                    &types,
                    &select,
                    max_rows,
                    &stop,
                    &tx,
                );
                if let Err(e) = r {
                    let _ = tx.send(Err(e));
                }
                done.store(true, Ordering::SeqCst);
            })
            .map_err(|e| IoError::Protocol(format!("cannot start a thread: {e}")))?;
        self.rx = Some(rx);
        Ok(())
    }

    /// Cancel the running query on the server.
    fn cancel(&self) {
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        if let Some(t) = self
            .cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            self.url.cancel(t);
        }
    }
}

impl Drop for PgSource {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The query's columns (names, how each is read) and the COPY statement that reads them.
fn describe(
    client: &mut postgres::Client,
    url: &PgUrl,
) -> Result<(Vec<String>, Vec<PgType>, String), IoError> {
    let base = url.select().map_err(IoError::Protocol)?;
    let stmt = client
        .prepare(&format!("SELECT * FROM ({base}) AS q LIMIT 0"))
        .map_err(|e| {
            IoError::Protocol(format!("{}: the query: {}", url.display(), pg_error(&e)))
        })?;
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut select = Vec::new();
    for c in stmt.columns() {
        let (t, cast) = match *c.type_() {
            Type::FLOAT8 => (PgType::Float8, ""),
            Type::FLOAT4 | Type::NUMERIC => (PgType::Float8, "::float8"),
            Type::INT8 => (PgType::Int8, ""),
            Type::INT4 | Type::INT2 => (PgType::Int8, "::int8"),
            Type::BOOL => (PgType::Bool, ""),
            Type::TEXT => (PgType::Text, ""),
            Type::TIMESTAMPTZ => (PgType::TimestampTz, ""),
            Type::TIMESTAMP => (PgType::Timestamp, ""),
            _ => (PgType::Text, "::text"),
        };
        select.push(format!("q.{}{cast}", quoted(c.name())));
        names.push(c.name().to_string());
        types.push(t);
    }
    Ok((names, types, select.join(", ")))
}

/// The COPY statement reading `base`'s rows as `casts` says.
fn copy_sql(base: &str, casts: &str) -> String {
    format!("COPY (SELECT {casts} FROM ({base}) AS q) TO STDOUT (FORMAT binary)")
}

#[allow(clippy::too_many_arguments)]
fn read_all(
    client: &mut postgres::Client,
    url: &PgUrl,
    names: &[String],
    types: &[PgType],
    select: &str,
    max_rows: usize,
    stop: &AtomicBool,
    tx: &crossbeam_channel::Sender<Result<Batch, String>>,
) -> Result<(), String> {
    let watch = url
        .time_column
        .as_ref()
        .and_then(|tc| names.iter().position(|n| n == tc));
    let base = url.select()?;
    let mut sql = copy_sql(&base, select);
    let mut last: Option<String> = None;
    loop {
        let reader = client
            .copy_out(sql.as_str())
            .map_err(|e| format!("{}: {}", url.display(), pg_error(&e)))?;
        let mut d = Decoder::new(reader, names.to_vec(), types.to_vec());
        d.watch = watch;
        loop {
            match d.next_batch(max_rows) {
                Ok(Some(b)) => {
                    if tx.send(Ok(b)).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                // a stop cancels the query: the read ends with the server's error
                Err(_) if stop.load(Ordering::SeqCst) => return Ok(()),
                Err(e) => return Err(format!("{}: {e}", url.display())),
            }
        }
        if let Some(v) = d.last_watched.take() {
            last = Some(watched_literal(&v, watch.map(|i| types[i])));
        }
        if !url.follow {
            return Ok(());
        }
        // follow: rows newer than the last one, once a second
        for _ in 0..20 {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let (Some(tc), Some(l)) = (&url.time_column, &last) {
            let newer = format!(
                "SELECT * FROM ({base}) AS f WHERE f.{} > {l} ORDER BY f.{}",
                quoted(tc),
                quoted(tc)
            );
            sql = copy_sql(&newer, select);
        }
    }
}

/// The last row's time as an SQL literal for the follow query.
fn watched_literal(raw: &[u8], t: Option<PgType>) -> String {
    match t {
        Some(PgType::TimestampTz) | Some(PgType::Timestamp) => {
            let us = i64::from_be_bytes(raw.try_into().unwrap_or([0; 8]));
            let text = super::copy::timestamp_text(us, t == Some(PgType::TimestampTz));
            format!("'{text}'")
        }
        Some(PgType::Float8) => {
            format!("{:?}", f64::from_be_bytes(raw.try_into().unwrap_or([0; 8])))
        }
        Some(PgType::Int8) => i64::from_be_bytes(raw.try_into().unwrap_or([0; 8])).to_string(),
        _ => format!("'{}'", String::from_utf8_lossy(raw).replace('\'', "''")),
    }
}

impl Source for PgSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Columnar
    }

    fn is_live(&self) -> bool {
        self.url.follow
    }

    fn next_row(&mut self, _buf: &mut Vec<u8>) -> Result<Read, IoError> {
        Err(IoError::Protocol(
            "a PostgreSQL source delivers batches, not rows".into(),
        ))
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<Batch>, IoError> {
        if self.rx.is_none() {
            self.start(max_rows)?;
        }
        let Some(rx) = self.rx.as_ref() else {
            return Ok(None);
        };
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.cancel();
                return Ok(None);
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(b)) => return Ok(Some(b)),
                Ok(Err(e)) => return Err(IoError::Protocol(e)),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

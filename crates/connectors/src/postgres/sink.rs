//! The PostgreSQL sink: each message one transaction: its rows by binary `COPY`, committed
//! before the pipeline acknowledges the source. The table is created from the output's columns
//! when missing. With `dedupe` (the default) every row carries `_row` (the primary key, a
//! `uuid`): a 128-bit hash of its values, led by the row's time when it has a time column (so
//! rows in time order go to the end of the index, see `copy::row_key`), so a message
//! delivered again (at least once: a restart after a
//! crash between the commit and the ack) is written once: a message is first copied straight
//! into the table; if one of its rows is there already (a unique violation, which rolls the
//! transaction back), it goes again through a temporary staging table and `INSERT ... ON
//! CONFLICT DO NOTHING`. Identical rows are one row then, as `drop_duplicates` would make
//! them; `dedupe=none` writes straight without the key and keeps every row.
//!
//! Two messages are written at once, each on a connection of its own (a thread each): while
//! PostgreSQL commits one (its WAL reaching the disk), it copies the next. `flush` waits for
//! both commits, and the pipeline acknowledges the source only after a flush.

use std::io::Write;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use streamprep_core::{Encoding, IoError, Output, Sink};

use super::copy::{encode, header, trailer, PgType};
use super::{pg_error, quoted, PgUrl};

/// Messages written at once, each on its own connection.
const CONNECTIONS: usize = 2;

/// How a message is written (on one connection).
struct Statements {
    /// COPY straight into the table (prepared once: one round trip a message, its own
    /// transaction).
    copy: postgres::Statement,
    /// With dedupe: COPY into the connection's staging table, then the INSERT that skips rows
    /// already in.
    staged: Option<(String, String)>,
}

/// A connection's thread, and the message it is writing.
struct Writer {
    jobs: Sender<Vec<u8>>,
    done: Receiver<(Vec<u8>, Result<u64, String>)>,
    /// Rows of the message being written, if one is.
    busy: Option<u64>,
    thread: JoinHandle<()>,
}

/// Writes messages into a table.
pub struct PgSink {
    url: PgUrl,
    table: String,
    /// The connections, until the first message's columns make the table and the statements.
    clients: Vec<postgres::Client>,
    writers: Vec<Writer>,
    /// The writer of the next message.
    next: usize,
    /// Buffers back from the writers, to encode the next messages into.
    spare: Vec<Vec<u8>>,
    /// Rows delivered again and not written a second time.
    pub skipped: u64,
    /// Rows written.
    pub written: u64,
}

impl PgSink {
    /// Connect (the table is made at the first message, from its columns).
    pub fn connect(url: &PgUrl) -> Result<Self, IoError> {
        let table = url
            .table
            .as_deref()
            .ok_or_else(|| IoError::Protocol("the PostgreSQL sink needs ?table=NAME".into()))?;
        let clients = (0..CONNECTIONS)
            .map(|_| url.connect())
            .collect::<Result<_, _>>()?;
        Ok(PgSink {
            url: url.clone(),
            table: table.to_string(),
            clients,
            writers: Vec::new(),
            next: 0,
            spare: Vec::new(),
            skipped: 0,
            written: 0,
        })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> IoError {
        IoError::Protocol(format!(
            "{} ({}): {what}: {e}",
            self.url.display(),
            self.table
        ))
    }

    /// Create the table for these columns; on each connection its statements (and staging
    /// table), then its writer thread.
    fn start(&mut self, schema: &arrow_schema::Schema) -> Result<(), IoError> {
        let table = quoted(&self.table);
        let mut cols: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", quoted(f.name()), PgType::of(f.data_type()).sql()))
            .collect();
        let mut names: Vec<String> = schema.fields().iter().map(|f| quoted(f.name())).collect();
        if self.url.dedupe {
            cols.push("\"_row\" uuid PRIMARY KEY".into());
            names.push("\"_row\"".into());
        }
        let ddl = format!("CREATE TABLE IF NOT EXISTS {table} ({})", cols.join(", "));
        let mut clients = std::mem::take(&mut self.clients);
        clients[0]
            .batch_execute(&ddl)
            .map_err(|e| self.err("creating the table", pg_error(&e)))?;
        let names = names.join(", ");
        let stage = quoted(&format!(
            "_streamprep_stage_{}",
            self.table.replace('.', "_")
        ));
        for mut client in clients {
            let copy = client
                .prepare(&format!(
                    "COPY {table} ({names}) FROM STDIN (FORMAT binary)"
                ))
                .map_err(|e| self.err("preparing the COPY", pg_error(&e)))?;
            let staged = if self.url.dedupe {
                client
                    .batch_execute(&format!(
                        "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ))
                    .map_err(|e| self.err("creating the staging table", pg_error(&e)))?;
                Some((
                    format!("COPY {stage} ({names}) FROM STDIN (FORMAT binary)"),
                    format!(
                        "INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT (\"_row\") DO NOTHING"
                    ),
                ))
            } else {
                None
            };
            let sql = Statements { copy, staged };
            let (jobs, take) = bounded::<Vec<u8>>(1);
            let (give, done) = bounded(1);
            let thread = std::thread::Builder::new()
                .name("pg-sink".into())
                .spawn(move || {
                    for buf in take {
                        let r = write_message(&mut client, &buf, &sql);
                        if give.send((buf, r)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| self.err("starting a writer", e))?;
            self.writers.push(Writer {
                jobs,
                done,
                busy: None,
                thread,
            });
        }
        Ok(())
    }

    /// Wait for writer `i`'s message, if it has one, and count it.
    fn collect(&mut self, i: usize) -> Result<(), IoError> {
        let w = &mut self.writers[i];
        let Some(rows) = w.busy.take() else {
            return Ok(());
        };
        let (buf, result) = w
            .done
            .recv()
            .map_err(|_| self.err("writing a message", "the writer stopped"))?;
        self.spare.push(buf);
        let inserted = result.map_err(|e| self.err("writing a message", e))?;
        self.written += inserted;
        self.skipped += rows.saturating_sub(inserted);
        Ok(())
    }
}

/// How a write failed: a row already in the table, a deadlock between the two connections
/// (each inserting a row the other holds), or anything else.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Duplicate,
    Deadlock,
    Other,
}

/// The error as text, and what it was.
fn pg(e: postgres::Error) -> (String, Failure) {
    use postgres::error::SqlState;
    let failure = match e.code() {
        Some(c) if c == &SqlState::UNIQUE_VIOLATION => Failure::Duplicate,
        Some(c) if c == &SqlState::T_R_DEADLOCK_DETECTED => Failure::Deadlock,
        _ => Failure::Other,
    };
    (pg_error(&e), failure)
}

/// One message: straight in; with dedupe, a row already there (or a deadlock with the other
/// connection over the same rows) rolls it back and the staging path writes the rest. The
/// rows written.
fn write_message(
    client: &mut postgres::Client,
    buf: &[u8],
    sql: &Statements,
) -> Result<u64, String> {
    let mut result = copy_once(client, buf, &sql.copy);
    if let Some((copy, insert)) = &sql.staged {
        // a deadlock is settled by PostgreSQL aborting one side: that side tries again
        for _ in 0..5 {
            match &result {
                Err((_, Failure::Duplicate | Failure::Deadlock)) => {
                    result = write_staged(client, buf, copy, insert);
                }
                _ => break,
            }
        }
    }
    result.map_err(|(e, _)| e)
}

/// The rows by one COPY, a transaction of its own (committed when it returns); the rows
/// written.
fn copy_once(
    client: &mut postgres::Client,
    buf: &[u8],
    copy: &postgres::Statement,
) -> Result<u64, (String, Failure)> {
    let mut w = client.copy_in(copy).map_err(pg)?;
    let sent = w.write_all(buf);
    let copied = w.finish().map_err(pg)?;
    sent.map_err(|e| (e.to_string(), Failure::Other))?;
    Ok(copied)
}

/// One transaction: the rows by COPY into the staging table, then `insert`; the rows written.
fn write_staged(
    client: &mut postgres::Client,
    buf: &[u8],
    copy: &str,
    insert: &str,
) -> Result<u64, (String, Failure)> {
    let mut tx = client.transaction().map_err(pg)?;
    let mut w = tx.copy_in(copy).map_err(pg)?;
    let sent = w.write_all(buf);
    w.finish().map_err(pg)?;
    sent.map_err(|e| (e.to_string(), Failure::Other))?;
    let written = tx.execute(insert, &[]).map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok(written)
}

impl Sink for PgSink {
    fn encoding(&self) -> Encoding {
        Encoding::Columnar
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        let batch = &out.batch;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writers.is_empty() {
            self.start(&batch.schema())?;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        header(&mut buf);
        encode(batch, self.url.dedupe, &mut buf).map_err(|e| self.err("encoding rows", e))?;
        trailer(&mut buf);
        // the next writer in turn, once its last message is in
        let i = self.next;
        self.next = (i + 1) % self.writers.len();
        self.collect(i)?;
        if self.writers[i].jobs.send(buf).is_err() {
            return Err(self.err("writing a message", "the writer stopped"));
        }
        self.writers[i].busy = Some(batch.num_rows() as u64);
        Ok(())
    }

    /// Every message written so far committed.
    fn flush(&mut self) -> Result<(), IoError> {
        for i in 0..self.writers.len() {
            self.collect(i)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.flush()?;
        for w in std::mem::take(&mut self.writers) {
            let Writer { jobs, thread, .. } = w;
            drop(jobs);
            let _ = thread.join();
        }
        if self.skipped > 0 {
            tracing::info!(
                "{}: {} row(s) already in the table (delivered again, or identical to a row written before) were not written again; dedupe=none keeps every row",
                self.url.display(),
                self.skipped
            );
        }
        Ok(())
    }
}

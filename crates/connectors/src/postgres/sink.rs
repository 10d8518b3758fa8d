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

use std::io::Write;

use streamprep_core::{Encoding, IoError, Output, Sink};

use super::copy::{encode, header, trailer, PgType};
use super::{pg_error, quoted, PgUrl};

/// How a message is written.
struct Statements {
    /// COPY straight into the table (prepared once: one round trip a message, its own
    /// transaction).
    copy: postgres::Statement,
    /// With dedupe: COPY into the staging table, then the INSERT that skips rows already in.
    staged: Option<(String, String)>,
}

/// Writes messages into a table.
pub struct PgSink {
    url: PgUrl,
    client: postgres::Client,
    table: String,
    /// The statements, once the columns are known.
    sql: Option<Statements>,
    buf: Vec<u8>,
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
        let client = url.connect()?;
        Ok(PgSink {
            url: url.clone(),
            client,
            table: table.to_string(),
            sql: None,
            buf: Vec::new(),
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

    /// Create the table (and the staging table) for these columns; the statements.
    fn prepare(&mut self, schema: &arrow_schema::Schema) -> Result<(), IoError> {
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
        self.client
            .batch_execute(&ddl)
            .map_err(|e| self.err("creating the table", pg_error(&e)))?;
        let names = names.join(", ");
        let copy = format!("COPY {table} ({names}) FROM STDIN (FORMAT binary)");
        let copy = self
            .client
            .prepare(&copy)
            .map_err(|e| self.err("preparing the COPY", pg_error(&e)))?;
        let staged = if self.url.dedupe {
            let stage = quoted(&format!(
                "_streamprep_stage_{}",
                self.table.replace('.', "_")
            ));
            self.client
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
        self.sql = Some(Statements { copy, staged });
        Ok(())
    }
}

/// The error as text, and whether it was a row already in the table.
fn pg(e: postgres::Error) -> (String, bool) {
    let duplicate = e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION);
    (pg_error(&e), duplicate)
}

/// The rows by one COPY, a transaction of its own (committed when it returns); the rows
/// written.
fn copy_once(
    client: &mut postgres::Client,
    buf: &[u8],
    copy: &postgres::Statement,
) -> Result<u64, (String, bool)> {
    let mut w = client.copy_in(copy).map_err(pg)?;
    let sent = w.write_all(buf);
    let copied = w.finish().map_err(pg)?;
    sent.map_err(|e| (e.to_string(), false))?;
    Ok(copied)
}

/// One transaction: the rows by COPY into the staging table, then `insert`; the rows written.
fn write_staged(
    client: &mut postgres::Client,
    buf: &[u8],
    copy: &str,
    insert: &str,
) -> Result<u64, (String, bool)> {
    let mut tx = client.transaction().map_err(pg)?;
    let mut w = tx.copy_in(copy).map_err(pg)?;
    let sent = w.write_all(buf);
    w.finish().map_err(pg)?;
    sent.map_err(|e| (e.to_string(), false))?;
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
        if self.sql.is_none() {
            self.prepare(&batch.schema())?;
        }

        self.buf.clear();
        header(&mut self.buf);
        encode(batch, self.url.dedupe, &mut self.buf).map_err(|e| self.err("encoding rows", e))?;
        trailer(&mut self.buf);
        let rows = batch.num_rows() as u64;
        // straight in; with dedupe, a row already there rolls it back and the staging path
        // writes the rest
        let Some(sql) = &self.sql else {
            return Ok(());
        };
        let result = match (
            copy_once(&mut self.client, &self.buf, &sql.copy),
            &sql.staged,
        ) {
            (Err((_, true)), Some((copy, insert))) => {
                write_staged(&mut self.client, &self.buf, copy, insert)
            }
            (r, _) => r,
        };
        let inserted = result.map_err(|(e, _)| self.err("writing a message", e))?;
        self.written += inserted;
        self.skipped += rows.saturating_sub(inserted);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), IoError> {
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

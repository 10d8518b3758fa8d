//! NDJSON -> batch for flat schemas (float64, int64, string, boolean columns), in one pass.
//!
//! Each row is a JSON object, or a JSON array of objects (several rows). Keys are matched in
//! schema order first (rows from one producer keep their key order), then through a map.
//! Missing keys are nulls, unknown keys are skipped. A row that does not fit is rolled back and
//! reported with its reason, and the other rows of the message go on: no second pass.
//!
//! Type rules, chosen so a frozen schema never silently changes a value:
//! - float64 takes any JSON number;
//! - int64 takes integers, and floats with no fractional part (`12.0`); `2.5` is refused;
//! - string takes strings, and the text of numbers, booleans, objects and arrays;
//! - boolean takes `true`/`false`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};

/// True when every column has a type this decoder builds.
pub fn supports(schema: &Schema) -> bool {
    schema.fields().iter().all(|f| {
        matches!(
            f.data_type(),
            DataType::Float64 | DataType::Int64 | DataType::Utf8 | DataType::Boolean
        )
    })
}

enum Values {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str { offsets: Vec<i32>, data: Vec<u8> },
    Bool(Vec<bool>),
}

struct Column {
    values: Values,
    valid: Vec<bool>,
    nulls: usize,
}

impl Column {
    fn len(&self) -> usize {
        self.valid.len()
    }

    fn push_null(&mut self) {
        match &mut self.values {
            Values::F64(v) => v.push(0.0),
            Values::I64(v) => v.push(0),
            Values::Str { offsets, data } => offsets.push(data.len() as i32),
            Values::Bool(v) => v.push(false),
        }
        self.valid.push(false);
        self.nulls += 1;
    }

    fn truncate(&mut self, rows: usize) {
        if self.valid.len() <= rows {
            // a string refused half-way (a bad escape, bad UTF-8) may have left bytes past the
            // last offset: they would join the next value (found by fuzzing: an invalid
            // string array, a panic)
            if let Values::Str { offsets, data } = &mut self.values {
                if let Some(&end) = offsets.last() {
                    data.truncate(end as usize);
                }
            }
            return;
        }
        self.nulls -= self.valid[rows..].iter().filter(|v| !**v).count();
        self.valid.truncate(rows);
        match &mut self.values {
            Values::F64(v) => v.truncate(rows),
            Values::I64(v) => v.truncate(rows),
            Values::Str { offsets, data } => {
                offsets.truncate(rows + 1);
                data.truncate(offsets[rows] as usize);
            }
            Values::Bool(v) => v.truncate(rows),
        }
    }
}

/// A reusable decoder for one schema.
pub struct FlatJsonDecoder {
    schema: SchemaRef,
    names: Vec<Vec<u8>>,
    /// For names of up to 15 bytes: the name and its closing quote as a little-endian word,
    /// and the mask of those bytes, so the expected key is checked with one compare.
    words: Vec<Option<(u128, u128)>>,
    index: HashMap<Vec<u8>, usize>,
    cols: Vec<Column>,
    rows: usize,
    scratch: Vec<u8>,
    /// A key outside the schema was seen since the last [`FlatJsonDecoder::decode`].
    unknown: bool,
    /// Columns from this index on have the kinds of their values counted (see
    /// [`FlatJsonDecoder::tally_from`]).
    tally_from: usize,
    tallies: Vec<Kinds>,
}

type Res<T> = Result<T, String>;

impl FlatJsonDecoder {
    /// A decoder for a [`supports`]ed schema.
    pub fn new(schema: SchemaRef) -> Self {
        let names: Vec<Vec<u8>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().to_vec())
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let words = names
            .iter()
            .map(|n| {
                (n.len() < 16).then(|| {
                    let mut w = [0u8; 16];
                    w[..n.len()].copy_from_slice(n);
                    w[n.len()] = b'"';
                    let mask = if n.len() == 15 {
                        u128::MAX
                    } else {
                        (1u128 << (8 * (n.len() + 1))) - 1
                    };
                    (u128::from_le_bytes(w), mask)
                })
            })
            .collect();
        FlatJsonDecoder {
            schema,
            names,
            words,
            index,
            cols: Vec::new(),
            rows: 0,
            scratch: Vec::new(),
            unknown: false,
            tally_from: usize::MAX,
            tallies: Vec::new(),
        }
    }

    /// Whether the last [`FlatJsonDecoder::decode`] skipped a key outside the schema (a column
    /// that appeared after the schema was fixed).
    pub fn saw_unknown_key(&self) -> bool {
        self.unknown
    }

    /// Count the kinds of the values of columns `from..` as they are decoded (a widened
    /// schema's extra columns: their type must be what this message's values call for).
    pub fn tally_from(&mut self, from: usize) {
        self.tally_from = from;
    }

    /// The kinds counted in the last decode, for columns `tally_from..` in order.
    pub fn tallies(&self) -> &[Kinds] {
        &self.tallies
    }

    fn reset(&mut self, capacity: usize) {
        self.rows = 0;
        self.unknown = false;
        let n = self.names.len().saturating_sub(self.tally_from);
        self.tallies.clear();
        self.tallies.resize(n, Kinds::default());
        self.cols = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let values = match f.data_type() {
                    DataType::Float64 => Values::F64(Vec::with_capacity(capacity)),
                    DataType::Int64 => Values::I64(Vec::with_capacity(capacity)),
                    DataType::Boolean => Values::Bool(Vec::with_capacity(capacity)),
                    _ => {
                        let mut offsets = Vec::with_capacity(capacity + 1);
                        offsets.push(0);
                        Values::Str {
                            offsets,
                            data: Vec::with_capacity(capacity * 8),
                        }
                    }
                };
                Column {
                    values,
                    valid: Vec::with_capacity(capacity),
                    nulls: 0,
                }
            })
            .collect();
    }

    /// Decode rows; `rows` yields each row's bytes. Returns the batch of the good rows and,
    /// for each refused row, its index and the reason.
    pub fn decode<'a>(
        &mut self,
        rows: impl Iterator<Item = &'a [u8]>,
        capacity: usize,
    ) -> Result<(RecordBatch, Vec<(usize, String)>), ArrowError> {
        self.reset(capacity);
        let mut errors = Vec::new();
        for (i, row) in rows.enumerate() {
            let before = self.rows;
            if let Err(e) = self.unit(row) {
                for c in &mut self.cols {
                    c.truncate(before);
                }
                self.rows = before;
                errors.push((i, e));
            }
        }
        Ok((self.finish()?, errors))
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let cols = std::mem::take(&mut self.cols);
        let arrays: Vec<ArrayRef> = cols
            .into_iter()
            .map(|c| {
                let nulls = if c.nulls == 0 {
                    None
                } else {
                    Some(NullBuffer::from(c.valid))
                };
                let a: ArrayRef = match c.values {
                    Values::F64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
                    Values::I64(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
                    Values::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
                    Values::Str { offsets, data } => Arc::new(StringArray::new(
                        OffsetBuffer::new(ScalarBuffer::from(offsets)),
                        Buffer::from(data),
                        nulls,
                    )),
                };
                a
            })
            .collect();
        let rows = self.rows;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }

    /// One input unit: an object or an array of objects.
    fn unit(&mut self, b: &[u8]) -> Res<()> {
        let mut p = skip_ws(b, 0);
        match b.get(p) {
            Some(b'{') => {
                p = self.object(b, p)?;
            }
            Some(b'[') => {
                p = skip_ws(b, p + 1);
                if b.get(p) == Some(&b']') {
                    p += 1;
                } else {
                    loop {
                        if b.get(p) != Some(&b'{') {
                            return Err(at(b, p, "an object in the array"));
                        }
                        p = skip_ws(b, self.object(b, p)?);
                        match b.get(p) {
                            Some(b',') => p = skip_ws(b, p + 1),
                            Some(b']') => {
                                p += 1;
                                break;
                            }
                            _ => return Err(at(b, p, "',' or ']'")),
                        }
                    }
                }
            }
            _ => return Err(at(b, p, "a JSON object")),
        }
        p = skip_ws(b, p);
        if p != b.len() {
            return Err(at(b, p, "the end of the row"));
        }
        Ok(())
    }

    /// Parse one object starting at `b[p] == '{'` into a new row; returns the position after it.
    fn object(&mut self, b: &[u8], mut p: usize) -> Res<usize> {
        let row = self.rows;
        let mut next = 0usize; // the field expected next in schema order
        p = skip_ws(b, p + 1);
        if b.get(p) == Some(&b'}') {
            p += 1;
        } else {
            loop {
                if b.get(p) != Some(&b'"') {
                    return Err(at(b, p, "a key in double quotes"));
                }
                // Fast path: the key expected next in schema order, compared in place. A match
                // followed by '"' is the whole key: a field name never holds '"' unescaped.
                let expected = match (self.words.get(next), b.get(p + 1..p + 17)) {
                    (Some(Some((word, mask))), Some(w16)) => {
                        let w = u128::from_le_bytes(w16.try_into().expect("16 bytes"));
                        (w & mask == *word).then(|| self.names[next].len())
                    }
                    _ => self.names.get(next).map(Vec::len).filter(|&n| {
                        b.get(p + 1..p + 1 + n) == Some(&self.names[next][..])
                            && b.get(p + 1 + n) == Some(&b'"')
                    }),
                };
                let (key_end, col) = if let Some(n) = expected {
                    (p + 2 + n, Some(next))
                } else {
                    let (key_end, escaped) = string_end(b, p)?;
                    let key = if escaped {
                        self.scratch.clear();
                        unescape(&b[p + 1..key_end - 1], &mut self.scratch)?;
                        self.scratch.clone()
                    } else {
                        b[p + 1..key_end - 1].to_vec()
                    };
                    (key_end, self.index.get(&key).copied())
                };
                p = skip_ws(b, key_end);
                if b.get(p) != Some(&b':') {
                    return Err(at(b, p, "':'"));
                }
                p = skip_ws(b, p + 1);
                p = match col {
                    Some(c) => {
                        next = c + 1;
                        if c >= self.tally_from {
                            let k = &mut self.tallies[c - self.tally_from];
                            match b.get(p) {
                                Some(b'"') => k.strings += 1,
                                Some(b'-' | b'0'..=b'9') => match number_end(b, p) {
                                    Ok((_, true)) => k.ints += 1,
                                    _ => k.floats += 1,
                                },
                                Some(b't' | b'f') => k.bools += 1,
                                Some(b'n') => k.nulls += 1,
                                _ => k.nested += 1,
                            }
                        }
                        if self.cols[c].len() > row {
                            self.cols[c].truncate(row); // a repeated key: the last one wins
                        }
                        self.value(b, p, c)?
                    }
                    None => {
                        self.unknown = true;
                        skip_value(b, p, 0)?
                    }
                };
                p = skip_ws(b, p);
                match b.get(p) {
                    Some(b',') => p = skip_ws(b, p + 1),
                    Some(b'}') => {
                        p += 1;
                        break;
                    }
                    _ => return Err(at(b, p, "',' or '}'")),
                }
            }
        }
        for c in &mut self.cols {
            if c.len() == row {
                c.push_null();
            }
        }
        self.rows += 1;
        Ok(p)
    }

    /// Parse a value into column `c`; returns the position after it.
    fn value(&mut self, b: &[u8], p: usize, c: usize) -> Res<usize> {
        let name = &self.schema.fields()[c];
        let wrong = |what: &str| {
            format!(
                "column '{}' holds {} in the stream's schema, found {what}",
                name.name(),
                kind(name.data_type())
            )
        };
        let col = &mut self.cols[c];
        match b.get(p) {
            Some(b'n') if b[p..].starts_with(b"null") => {
                col.push_null();
                Ok(p + 4)
            }
            Some(&c @ (b't' | b'f'))
                if b[p..].starts_with(if c == b't' { b"true" } else { b"false" }) =>
            {
                let (lit, truth): (&[u8], bool) = if c == b't' {
                    (b"true", true)
                } else {
                    (b"false", false)
                };
                match &mut col.values {
                    Values::Bool(v) => v.push(truth),
                    Values::Str { offsets, data } => {
                        data.extend_from_slice(lit);
                        offsets.push(data.len() as i32);
                    }
                    _ => return Err(wrong(if truth { "true" } else { "false" })),
                }
                col.valid.push(true);
                Ok(p + lit.len())
            }
            Some(b'"') => {
                let (end, escaped) = string_end(b, p)?;
                let Values::Str { offsets, data } = &mut col.values else {
                    return Err(wrong("a string"));
                };
                let raw = &b[p + 1..end - 1];
                if escaped {
                    unescape(raw, data)?;
                } else {
                    if !raw.is_ascii() {
                        std::str::from_utf8(raw).map_err(|_| at(b, p, "UTF-8 text"))?;
                    }
                    data.extend_from_slice(raw);
                }
                offsets.push(
                    i32::try_from(data.len())
                        .map_err(|_| "message has more than 2 GiB of text".to_string())?,
                );
                col.valid.push(true);
                Ok(end)
            }
            Some(b'-' | b'0'..=b'9') => {
                if let Values::F64(v) = &mut col.values {
                    // the common case, in one pass: validate and convert together
                    let (end, x) = scan_f64(b, p)?;
                    v.push(x);
                    col.valid.push(true);
                    return Ok(end);
                }
                let (end, is_int) = number_end(b, p)?;
                let tok = &b[p..end];
                match &mut col.values {
                    Values::F64(_) => unreachable!("handled above"),
                    Values::I64(v) => {
                        let i = if is_int { parse_i64(tok) } else { None };
                        let i = match i {
                            Some(i) => i,
                            None => {
                                let f = parse_f64(tok).ok_or_else(|| at(b, p, "a number"))?;
                                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                                    f as i64
                                } else {
                                    return Err(format!(
                                        "column '{}' holds integers in the stream's schema, found {}; declare it float64 in the project's [schema]",
                                        name.name(),
                                        String::from_utf8_lossy(tok)
                                    ));
                                }
                            }
                        };
                        v.push(i);
                    }
                    Values::Str { offsets, data } => {
                        data.extend_from_slice(tok);
                        offsets.push(data.len() as i32);
                    }
                    Values::Bool(_) => return Err(wrong("a number")),
                }
                col.valid.push(true);
                Ok(end)
            }
            Some(b'{' | b'[') => {
                let end = skip_value(b, p, 0)?;
                let Values::Str { offsets, data } = &mut col.values else {
                    return Err(wrong("an object or array"));
                };
                // its JSON text, which must be UTF-8 like any string (found by fuzzing: raw
                // bytes in a nested value made an invalid string array, a panic)
                let text = &b[p..end];
                if !text.is_ascii() && std::str::from_utf8(text).is_err() {
                    return Err(at(b, p, "UTF-8 text"));
                }
                data.extend_from_slice(text);
                offsets.push(data.len() as i32);
                col.valid.push(true);
                Ok(end)
            }
            _ => Err(at(b, p, "a JSON value")),
        }
    }
}

fn kind(dt: &DataType) -> &'static str {
    match dt {
        DataType::Float64 => "numbers",
        DataType::Int64 => "integers",
        DataType::Boolean => "booleans",
        _ => "text",
    }
}

fn at(b: &[u8], p: usize, expected: &str) -> String {
    match b.get(p) {
        Some(c) => format!(
            "invalid JSON at byte {p}: expected {expected}, found '{}'",
            c.escape_ascii()
        ),
        None => format!("invalid JSON: the row ends where {expected} was expected"),
    }
}

#[inline]
fn skip_ws(b: &[u8], mut p: usize) -> usize {
    // compact JSON has no whitespace: one comparison settles the common case
    if b.get(p).is_some_and(|&c| c > b' ') {
        return p;
    }
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(p) {
        p += 1;
    }
    p
}

/// End (after the closing quote) of the string starting at `b[p] == '"'`, and whether it holds escapes.
fn string_end(b: &[u8], p: usize) -> Res<(usize, bool)> {
    let mut q = p + 1;
    let mut escaped = false;
    // Most strings are short: a plain loop over the first bytes beats memchr's setup.
    let short_end = (q + 16).min(b.len());
    while q < short_end {
        match b[q] {
            b'"' => return Ok((q + 1, false)),
            b'\\' => break,
            _ => q += 1,
        }
    }
    loop {
        match memchr::memchr2(b'"', b'\\', &b[q..]) {
            None => return Err(at(b, b.len(), "the closing '\"' of a string")),
            Some(i) if b[q + i] == b'"' => return Ok((q + i + 1, escaped)),
            Some(i) => {
                escaped = true;
                q += i + 2; // skip the escaped character
                if q > b.len() {
                    return Err(at(b, b.len(), "an escape sequence"));
                }
            }
        }
    }
}

/// Decode a JSON string body with escapes into `out` (checked UTF-8).
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let start = out.len();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or("a string ends inside an escape")?;
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hex = |i: usize| -> Res<u32> {
                    let h = raw
                        .get(i..i + 4)
                        .ok_or("a \\u escape needs four hex digits")?;
                    let s = std::str::from_utf8(h).map_err(|_| "bad \\u escape")?;
                    u32::from_str_radix(s, 16).map_err(|_| "bad \\u escape".to_string())
                };
                let mut cp = hex(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&cp) && raw.get(i..i + 2) == Some(b"\\u") {
                    let lo = hex(i + 2)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => {
                return Err(format!(
                    "invalid escape '\\{}' in a string",
                    other.escape_ascii()
                ))
            }
        }
    }
    std::str::from_utf8(&out[start..]).map_err(|_| "a string is not valid UTF-8".to_string())?;
    Ok(())
}

/// End of the JSON number at `p` (validated against JSON's grammar), and whether it is an integer.
fn number_end(b: &[u8], p: usize) -> Res<(usize, bool)> {
    let digits = |mut q: usize| {
        while b.get(q).is_some_and(u8::is_ascii_digit) {
            q += 1;
        }
        q
    };
    let mut q = p;
    if b[q] == b'-' {
        q += 1;
    }
    match b.get(q) {
        Some(b'0') => q += 1,
        Some(b'1'..=b'9') => q = digits(q + 1),
        _ => return Err(at(b, q, "a digit")),
    }
    let mut int = true;
    if b.get(q) == Some(&b'.') {
        int = false;
        let d = digits(q + 1);
        if d == q + 1 {
            return Err(at(b, d, "a digit after '.'"));
        }
        q = d;
    }
    if let Some(b'e' | b'E') = b.get(q) {
        int = false;
        q += 1;
        if let Some(b'+' | b'-') = b.get(q) {
            q += 1;
        }
        let d = digits(q);
        if d == q {
            return Err(at(b, d, "a digit in the exponent"));
        }
        q = d;
    }
    Ok((q, int))
}

/// The value kinds one column held in a scan of rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// Integers.
    pub ints: usize,
    /// Numbers with a fraction or an exponent.
    pub floats: usize,
    /// Strings.
    pub strings: usize,
    /// `true` / `false`.
    pub bools: usize,
    /// Objects and arrays (kept as their JSON text in a string column).
    pub nested: usize,
    /// Nulls (the key is there, without a value).
    pub nulls: usize,
}

impl Kinds {
    /// The column type these values call for: numeric when numbers are the majority of the
    /// present values (float64 if any is fractional), boolean when booleans are, text
    /// otherwise; `None` when the column never held a value (only nulls): its type is not
    /// known yet.
    pub fn data_type(&self) -> Option<DataType> {
        let numbers = self.ints + self.floats;
        let others = self.strings + self.bools + self.nested;
        if numbers + others == 0 {
            None
        } else if numbers > others {
            Some(if self.floats > 0 {
                DataType::Float64
            } else {
                DataType::Int64
            })
        } else if self.bools > self.strings + self.nested + numbers {
            Some(DataType::Boolean)
        } else {
            Some(DataType::Utf8)
        }
    }
}

/// Scan rows for their columns, without building JSON values: the value kinds of each key, keys
/// in first-seen order. A row may be an object or an array of objects (several rows); anything
/// else (a scalar, an array of scalars, bad JSON) is passed over: `prepare` refuses it later,
/// so one odd row never decides a column's type. Also returns how many objects were read.
pub fn scan_columns(rows: &[&[u8]]) -> (Vec<(String, Kinds)>, usize) {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut kinds: Vec<Kinds> = Vec::new();
    let mut scratch = Vec::new();
    let mut row_kinds: Vec<(usize, u8)> = Vec::new();
    let mut seen = 0;
    for row in rows {
        let b = *row;
        let mut p = skip_ws(b, 0);
        let array = match b.get(p) {
            Some(b'{') => false,
            Some(b'[') => {
                p = skip_ws(b, p + 1);
                true
            }
            _ => continue,
        };
        // each object of the unit; a bad one ends the unit (its earlier objects count)
        loop {
            if b.get(p) != Some(&b'{') {
                break;
            }
            row_kinds.clear();
            let ok = (|| -> Res<usize> {
                p = skip_ws(b, p + 1);
                if b.get(p) == Some(&b'}') {
                    return Ok(p + 1);
                }
                loop {
                    if b.get(p) != Some(&b'"') {
                        return Err(String::new());
                    }
                    let (end, escaped) = string_end(b, p)?;
                    let key: &[u8] = if escaped {
                        scratch.clear();
                        unescape(&b[p + 1..end - 1], &mut scratch)?;
                        &scratch
                    } else {
                        &b[p + 1..end - 1]
                    };
                    let col = match index.get(key) {
                        Some(&c) => c,
                        None => {
                            let key = key.to_vec(); // once per column, not per row
                            index.insert(key.clone(), names.len());
                            names.push(key);
                            kinds.push(Kinds::default());
                            names.len() - 1
                        }
                    };
                    p = skip_ws(b, end);
                    if b.get(p) != Some(&b':') {
                        return Err(String::new());
                    }
                    p = skip_ws(b, p + 1);
                    let (kind, next) = match b.get(p) {
                        Some(b'"') => (b's', string_end(b, p)?.0),
                        Some(b'-' | b'0'..=b'9') => {
                            let (e, int) = number_end(b, p)?;
                            (if int { b'i' } else { b'f' }, e)
                        }
                        Some(b't') if b[p..].starts_with(b"true") => (b'b', p + 4),
                        Some(b'f') if b[p..].starts_with(b"false") => (b'b', p + 5),
                        Some(b'n') if b[p..].starts_with(b"null") => (b'n', p + 4),
                        Some(b'{' | b'[') => (b'x', skip_value(b, p, 0)?),
                        _ => return Err(String::new()),
                    };
                    row_kinds.push((col, kind));
                    p = skip_ws(b, next);
                    match b.get(p) {
                        Some(b',') => p = skip_ws(b, p + 1),
                        Some(b'}') => return Ok(p + 1),
                        _ => return Err(String::new()),
                    }
                }
            })();
            let Ok(end) = ok else {
                break; // a bad row: prepare will refuse it
            };
            seen += 1;
            for &(c, k) in &row_kinds {
                let kd = &mut kinds[c];
                match k {
                    b'i' => kd.ints += 1,
                    b'f' => kd.floats += 1,
                    b's' => kd.strings += 1,
                    b'b' => kd.bools += 1,
                    b'x' => kd.nested += 1,
                    _ => kd.nulls += 1,
                }
            }
            p = skip_ws(b, end);
            if !array || b.get(p) != Some(&b',') {
                break;
            }
            p = skip_ws(b, p + 1);
        }
    }
    let cols = names
        .into_iter()
        .zip(kinds)
        .map(|(n, k)| (String::from_utf8_lossy(&n).into_owned(), k))
        .collect();
    (cols, seen)
}

/// Infer a schema from sample rows (see [`scan_columns`] and [`Kinds::data_type`]). Columns
/// that only held nulls get the type `Null`: not known yet (`prepare` types them from their
/// first values, later). `None` when no row was a JSON object.
pub fn infer_flat(rows: &[&[u8]]) -> Option<Schema> {
    let (cols, seen) = scan_columns(rows);
    if seen == 0 {
        return None;
    }
    let fields: Vec<arrow_schema::Field> = cols
        .into_iter()
        .map(|(n, k)| arrow_schema::Field::new(n, k.data_type().unwrap_or(DataType::Null), true))
        .collect();
    Some(Schema::new(fields))
}

/// Powers of ten exactly representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parse a JSON number token (already validated by [`number_end`]) as the nearest f64.
///
/// Clinger's fast path: when the digits form an integer below 2^53 and the decimal exponent is
/// within +-22, both operands are exact and one IEEE multiplication or division rounds
/// correctly. Everything else goes to the standard library's (correctly rounded) parser.
fn parse_f64(tok: &[u8]) -> Option<f64> {
    let mut i = 0;
    let neg = tok.first() == Some(&b'-');
    if neg {
        i = 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut exp: i32 = 0;
    let mut fast = true;
    while i < tok.len() && tok[i].is_ascii_digit() {
        mantissa = mantissa
            .wrapping_mul(10)
            .wrapping_add(u64::from(tok[i] - b'0'));
        digits += 1;
        i += 1;
    }
    if i < tok.len() && tok[i] == b'.' {
        i += 1;
        while i < tok.len() && tok[i].is_ascii_digit() {
            mantissa = mantissa
                .wrapping_mul(10)
                .wrapping_add(u64::from(tok[i] - b'0'));
            digits += 1;
            exp -= 1;
            i += 1;
        }
    }
    if i < tok.len() {
        fast = false; // an exponent: leave it to the standard parser
    }
    if fast && digits <= 15 && mantissa < (1u64 << 53) && (-22..=22).contains(&exp) {
        let m = mantissa as f64;
        let v = if exp < 0 {
            m / POW10[(-exp) as usize]
        } else {
            m * POW10[exp as usize]
        };
        return Some(if neg { -v } else { v });
    }
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// Validate the JSON number at `p` and convert it, in one pass (see [`parse_f64`] for the fast
/// path's exactness); returns the position after it.
fn scan_f64(b: &[u8], p: usize) -> Res<(usize, f64)> {
    let mut q = p;
    let neg = b[q] == b'-';
    if neg {
        q += 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exp: i32 = 0;
    match b.get(q) {
        Some(b'0') => {
            q += 1;
            digits = 1;
        }
        Some(b'1'..=b'9') => {
            while let Some(&d @ b'0'..=b'9') = b.get(q) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                digits += 1;
                q += 1;
            }
        }
        _ => return Err(at(b, q, "a digit")),
    }
    if b.get(q) == Some(&b'.') {
        q += 1;
        let start = q;
        while let Some(&d @ b'0'..=b'9') = b.get(q) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            digits += 1;
            exp -= 1;
            q += 1;
        }
        if q == start {
            return Err(at(b, q, "a digit after '.'"));
        }
    }
    if let Some(b'e' | b'E') = b.get(q) {
        // rare: validate, then let the standard parser convert
        let (end, _) = number_end(b, p)?;
        return parse_f64(&b[p..end])
            .map(|x| (end, x))
            .ok_or_else(|| at(b, p, "a number"));
    }
    if digits <= 15 && mantissa < (1u64 << 53) && exp >= -22 {
        let m = mantissa as f64;
        let v = if exp < 0 {
            m / POW10[(-exp) as usize]
        } else {
            m
        };
        return Ok((q, if neg { -v } else { v }));
    }
    parse_f64(&b[p..q])
        .map(|x| (q, x))
        .ok_or_else(|| at(b, p, "a number"))
}

/// Parse an integer token (digits with an optional minus) as i64; `None` on overflow.
fn parse_i64(tok: &[u8]) -> Option<i64> {
    let (neg, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    let mut v: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// Skip any JSON value at `p`; returns the position after it.
fn skip_value(b: &[u8], p: usize, depth: usize) -> Res<usize> {
    if depth > 128 {
        return Err("JSON nested more than 128 levels".into());
    }
    match b.get(p) {
        Some(b'"') => Ok(string_end(b, p)?.0),
        Some(b'-' | b'0'..=b'9') => Ok(number_end(b, p)?.0),
        Some(b't') if b[p..].starts_with(b"true") => Ok(p + 4),
        Some(b'f') if b[p..].starts_with(b"false") => Ok(p + 5),
        Some(b'n') if b[p..].starts_with(b"null") => Ok(p + 4),
        Some(&open @ (b'{' | b'[')) => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut q = skip_ws(b, p + 1);
            if b.get(q) == Some(&close) {
                return Ok(q + 1);
            }
            loop {
                if open == b'{' {
                    if b.get(q) != Some(&b'"') {
                        return Err(at(b, q, "a key in double quotes"));
                    }
                    q = skip_ws(b, string_end(b, q)?.0);
                    if b.get(q) != Some(&b':') {
                        return Err(at(b, q, "':'"));
                    }
                    q = skip_ws(b, q + 1);
                }
                q = skip_ws(b, skip_value(b, q, depth + 1)?);
                match b.get(q) {
                    Some(b',') => q = skip_ws(b, q + 1),
                    Some(&c) if c == close => return Ok(q + 1),
                    _ => return Err(at(b, q, "',' or the end of the object/array")),
                }
            }
        }
        _ => Err(at(b, p, "a JSON value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]))
    }

    fn decode(rows: &[&str]) -> (RecordBatch, Vec<(usize, String)>) {
        let mut d = FlatJsonDecoder::new(schema());
        d.decode(rows.iter().map(|r| r.as_bytes()), rows.len())
            .unwrap()
    }

    #[test]
    fn decodes_like_arrow_json_on_good_rows() {
        let rows = [
            r#"{"f": 1.5, "i": -3, "s": "a\"b\\c\n\u00e9\ud83d\ude00", "b": true}"#,
            r#"  {"i": 4, "f": -2e-3, "extra": {"x": [1, "}"]}, "s": 12.50}  "#,
            r#"[{"f": null, "i": 7.0, "s": "", "b": false}, {}]"#,
            r#"{"f":0,"i":null,"s":{"nested":[1,2]},"b":null}"#,
        ];
        let (batch, errors) = decode(&rows);
        assert!(errors.is_empty(), "{errors:?}");
        // the same text through arrow-json
        let mut reference = arrow_json::ReaderBuilder::new(schema())
            .with_flatten(true)
            .with_coerce_primitive(true)
            .build_decoder()
            .unwrap();
        for r in &rows[..3] {
            reference.decode(r.as_bytes()).unwrap();
        }
        let want = reference.flush().unwrap().unwrap();
        assert_eq!(batch.slice(0, 4), want.slice(0, 4));
        assert_eq!(batch.num_rows(), 5);
        let s = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(4), r#"{"nested":[1,2]}"#);
        assert_eq!(s.value(1), "12.50");
    }

    /// Numbers whose nearest double the parsers must find, bit for bit.
    const NUMBERS: [&str; 16] = [
        "0",
        "-0",
        "12.3",
        "-0.1",
        "123456789012345",
        "1234567890123456789",
        "0.30000000000000004",
        "1e300",
        "-2.5E-3",
        "9007199254740993",
        "4.35",
        "100.0",
        "0.000001",
        "3.14e+2",
        "0.0000000000000000000000001",
        "17976931348623157e292",
    ];

    #[test]
    fn one_pass_scan_agrees_with_validate_then_parse() {
        for c in NUMBERS {
            let text = format!("{c},");
            let (end, x) = scan_f64(text.as_bytes(), 0).unwrap();
            assert_eq!(end, c.len(), "{c}");
            assert_eq!(x.to_bits(), c.parse::<f64>().unwrap().to_bits(), "{c}");
        }
        // malformed numbers: both refuse, or both stop at the same place (the caller then
        // refuses the stray character)
        for bad in ["-", "01", "1.", "1e", "-.5", "1.e3", "1.5.2"] {
            match (scan_f64(bad.as_bytes(), 0), number_end(bad.as_bytes(), 0)) {
                (Ok((a, _)), Ok((b, _))) => assert!(a == b && a < bad.len(), "{bad}"),
                (Err(_), Err(_)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn numbers_parse_to_the_nearest_double() {
        for c in NUMBERS {
            let want: f64 = c.parse().unwrap();
            let got = parse_f64(c.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{c}");
        }
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
    }

    #[test]
    fn a_string_refused_half_way_leaves_nothing_behind() {
        // bytes of a refused string (a bad escape after text, bad UTF-8 in a nested value)
        // must not join the next row's string
        let mut d = FlatJsonDecoder::new(schema());
        let rows: [&[u8]; 5] = [
            b"{\"s\": \"2019-0\xff\\\\ x\\q\"}",
            b"{\"s\": \"abc\\u12\"}",
            b"{\"s\": [\"\xfe\"]}",
            b"{\"s\": \"good\"}",
            b"{\"s\": {\"k\": \"\xc3\xa9\"}}",
        ];
        let (batch, errors) = d.decode(rows.iter().copied(), rows.len()).unwrap();
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2]);
        let s = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "good");
        assert_eq!(s.value(1), "{\"k\": \"\u{e9}\"}");
    }

    #[test]
    fn bad_rows_are_rolled_back_with_a_reason() {
        let rows = [
            r#"{"f": 1, "s": "ok"}"#,
            r#"{"f": "x"}"#,
            r#"{"i": 2.5}"#,
            r#"{"f": 1,}"#,
            r#"{"f": 01}"#,
            r#"{"s": "unterminated}"#,
            r#"{"f": 2} trailing"#,
            r#"{"b": 1}"#,
            r#"{"f": 3, "s": "kept"}"#,
        ];
        let (batch, errors) = decode(&rows);
        assert_eq!(batch.num_rows(), 2);
        let idx: Vec<usize> = errors.iter().map(|e| e.0).collect();
        assert_eq!(idx, vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(
            errors[0]
                .1
                .contains("column 'f' holds numbers in the stream's schema, found a string"),
            "{}",
            errors[0].1
        );
        assert!(
            errors[1].1.contains("declare it float64"),
            "{}",
            errors[1].1
        );
        let s = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((s.value(0), s.value(1)), ("ok", "kept"));
    }

    #[test]
    fn keys_of_every_length_near_the_word_size_match_exactly() {
        // names of 14..=17 bytes cross the 15-byte limit of the one-word compare; a key that
        // is a prefix or an extension of the expected name must not match it
        let names = [
            "abcdefghijklmn",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ];
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        let mut d = FlatJsonDecoder::new(schema);
        let rows = [
            // in order, the last key ending just before the row's end
            r#"{"abcdefghijklmn":1,"abcdefghijklmno":2,"abcdefghijklmnop":3,"abcdefghijklmnopq":4}"#,
            // prefixes and extensions of the expected names: unknown keys, skipped
            r#"{"abcdefghijklm":9,"abcdefghijklmnoX":9,"abcdefghijklmnopqr":9,"abcdefghijklmno":5}"#,
            // out of order: found through the map
            r#"{"abcdefghijklmnopq":6,"abcdefghijklmn":7}"#,
            r#"{"abcdefghijklmn":8}"#,
        ];
        let (batch, errors) = d.decode(rows.iter().map(|r| r.as_bytes()), 4).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let col = |c: usize| -> Vec<Option<i64>> {
            batch
                .column(c)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .collect()
        };
        assert_eq!(col(0), vec![Some(1), None, Some(7), Some(8)]);
        assert_eq!(col(1), vec![Some(2), Some(5), None, None]);
        assert_eq!(col(2), vec![Some(3), None, None, None]);
        assert_eq!(col(3), vec![Some(4), None, Some(6), None]);
    }
}

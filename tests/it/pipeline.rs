//! The engine through its library API: pool output is identical to inline for any worker
//! count and buffer size; bad rows go to dead letters with a reason and good rows go on.

use std::sync::{Arc, Mutex};

use streamprep_connectors::dead_letter::DeadLetterWriter;
use streamprep_connectors::file::{LineSource, WriterSink};
use streamprep_connectors::generator::DavisSource;
use streamprep_core::{DeadLetterSink, Encoding, IoError, Output, RowFormat, Sink};
use streamprep_engine::{run, Method, PipelineConfig};
use streamprep_ops::prepare::Compression;

/// A sink that keeps the bytes in memory.
#[derive(Clone, Default)]
pub struct Mem(Arc<Mutex<Vec<u8>>>);

impl Mem {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Sink for Mem {
    fn encoding(&self) -> Encoding {
        Encoding::Ndjson
    }
    fn write(&mut self, out: Output) -> Result<(), IoError> {
        self.0.lock().expect("lock").extend_from_slice(&out.encoded);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl std::io::Write for Mem {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cfg(chain: &str, buffer: usize, method: Method) -> PipelineConfig {
    let mut c = PipelineConfig::new(chain.split(',').map(String::from).collect(), buffer);
    c.method = method;
    c
}

/// Run `cfg` over `input` (NDJSON rows): (output, dead letters, summary).
fn run_bytes(cfg: &PipelineConfig, input: &[u8]) -> (String, String, streamprep_engine::Summary) {
    let mut src = LineSource::new(input, RowFormat::Ndjson);
    let mut sink = Mem::default();
    let dl_bytes = Mem::default();
    let mut dl = DeadLetterWriter::new(dl_bytes.clone());
    let s = run(
        cfg,
        &mut src,
        &mut sink,
        Some(&mut dl as &mut dyn DeadLetterSink),
    )
    .expect("run");
    let text = |m: Mem| String::from_utf8(m.bytes()).expect("utf8");
    (text(sink), text(dl_bytes), s)
}

fn run_davis(
    chain: &str,
    rows: u64,
    buffer: usize,
    method: Method,
) -> (Vec<u8>, streamprep_engine::Summary) {
    let mut src = DavisSource::new(11, rows);
    let mut sink = Mem::default();
    let s = run(&cfg(chain, buffer, method), &mut src, &mut sink, None).expect("run");
    (sink.bytes(), s)
}

#[test]
fn pool_output_is_identical_to_inline_for_any_workers_and_buffer() {
    let chain = "fillna_zeros,normalizer,drop_duplicates,quantile_transformer_uniform";
    for buffer in [1, 7, 100, 1000] {
        let (want, s) = run_davis(chain, 3000, buffer, Method::Inline);
        assert_eq!(s.rows_in, 3000);
        if buffer >= 100 {
            assert!(
                s.rows_out > 2900 && s.rows_out < 3000,
                "duplicates dropped: {}",
                s.rows_out
            );
        } else {
            assert!(
                s.rows_out > 2900 && s.rows_out <= 3000,
                "rows out: {}",
                s.rows_out
            );
        }
        assert_eq!(s.messages, 3000u64.div_ceil(buffer as u64));
        // every message was timed, each of its six stages too
        assert_eq!(s.metrics.chain.count, s.messages);
        assert_eq!(s.metrics.stages.len(), 6);
        assert!(s.metrics.stages.iter().all(|(_, p)| p.count == s.messages));
        for workers in [1, 2, 3, 5] {
            let (got, s2) = run_davis(chain, 3000, buffer, Method::Pool { workers });
            assert_eq!(
                s2,
                streamprep_engine::Summary {
                    seconds: s2.seconds,
                    metrics: s2.metrics.clone(), // times differ run to run
                    ..s.clone()
                }
            );
            assert!(
                got == want,
                "pool with {workers} workers differs from inline at buffer {buffer}"
            );
        }
    }
}

#[test]
fn bad_rows_go_to_dead_letters_and_good_rows_go_on() {
    let input = b"{\"a\": 1.5, \"s\": \"x\"}\n{\"a\": 2.5, \"s\": \"y\"}\nnot json\n{\"a\": \"oops\", \"s\": \"z\"}\n{\"a\": 4.0, \"s\": \"w\"}\n\n{\"a\": -1.0, \"s\": \"v\"}\n";
    for method in [Method::Inline, Method::Pool { workers: 2 }] {
        let (out, dead, s) = run_bytes(&cfg("abs", 3, method), input);
        assert_eq!(
            out,
            "{\"a\":1.5,\"s\":\"x\"}\n{\"a\":2.5,\"s\":\"y\"}\n{\"a\":4.0,\"s\":\"w\"}\n{\"a\":1.0,\"s\":\"v\"}\n"
        );
        assert_eq!((s.rows_in, s.rows_out, s.dead_letters), (6, 4, 2));
        let lines: Vec<serde_json::Value> = dead
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2, "{dead}");
        assert_eq!(lines[0]["data"], "not json");
        assert_eq!(lines[0]["step"], "prepare");
        assert_eq!(lines[1]["data"], "{\"a\": \"oops\", \"s\": \"z\"}");
        assert!(
            lines[1]["reason"].as_str().unwrap_or("").contains("schema"),
            "{dead}"
        );
    }
}

#[test]
fn a_refused_message_is_dead_lettered_whole_and_the_next_one_goes_on() {
    let input = b"{\"a\": 1.0}\n{\"a\": null}\n{\"a\": 3.0}\n{\"a\": 4.0}\n";
    let (out, dead, s) = run_bytes(&cfg("normalizer", 2, Method::Inline), input);
    assert_eq!(out, "{\"a\":1.0}\n{\"a\":1.0}\n");
    assert_eq!((s.rows_out, s.dead_letters), (2, 2));
    let dead: serde_json::Value = serde_json::from_str(&dead).expect("one dead letter");
    assert_eq!(dead["step"], "normalizer");
    assert_eq!(dead["rows"], 2);
    assert!(dead["reason"].as_str().unwrap_or("").contains("fillna"));
}

#[test]
fn zlib_base64_rows_are_decoded_like_the_paper_sent_them() {
    use base64::Engine;
    use std::io::Write;
    let mut wrapped = Vec::new();
    for text in [
        "{\"a\": -1.0, \"b\": 2}",
        "[{\"a\": -2.0, \"b\": 3}, {\"a\": 5.5, \"b\": -4}]",
        "%%%",
    ] {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text.as_bytes()).expect("zlib");
        let enc = if text == "%%%" {
            "%%%".to_string()
        } else {
            base64::engine::general_purpose::STANDARD.encode(z.finish().expect("zlib"))
        };
        wrapped.extend_from_slice(enc.as_bytes());
        wrapped.push(b'\n');
    }
    let mut c = cfg("abs", 10, Method::Inline);
    c.compression = Compression::ZlibBase64;
    c.schema = Some(Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("a", arrow_schema::DataType::Float64, true),
        arrow_schema::Field::new("b", arrow_schema::DataType::Int64, true),
    ])));
    let (out, dead, s) = run_bytes(&c, &wrapped);
    assert_eq!(
        out,
        "{\"a\":1.0,\"b\":2}\n{\"a\":2.0,\"b\":3}\n{\"a\":5.5,\"b\":4}\n"
    );
    assert_eq!(s.dead_letters, 1);
    assert!(dead.contains("not base64"));
}

#[test]
fn csv_in_csv_out_keeps_strings_and_header() {
    let input = b"ts,temp,hum,dir\n2019-01-01T00:00:00,-1.5,80,N\n2019-01-01T00:01:00,,81,NE\n2019-01-01T00:01:00,,81,NE\n";
    let mut src = LineSource::new(&input[..], RowFormat::Csv);
    let out = Mem::default();
    let mut sink = WriterSink::new(out.clone(), Encoding::Csv);
    run(
        &cfg("fillna_zeros,abs,drop_duplicates", 2, Method::Inline),
        &mut src,
        &mut sink,
        None,
    )
    .expect("run");
    assert_eq!(
        String::from_utf8(out.bytes()).expect("utf8"),
        "ts,temp,hum,dir\n2019-01-01T00:00:00,1.5,80,N\n2019-01-01T00:01:00,0.0,81,NE\n2019-01-01T00:01:00,0.0,81,NE\n"
    );
}

#[test]
fn fast_json_decoder_agrees_with_arrow_json_on_station_rows() {
    use streamprep_connectors::generator::DavisGenerator;
    use streamprep_ops::codec::json_decode::FlatJsonDecoder;
    let mut g = DavisGenerator::new(99);
    let mut text = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..5000 {
        let start = text.len();
        g.write_row(&mut text);
        rows.push(start..text.len());
        text.push(b'\n');
    }
    let sample: Vec<&[u8]> = rows.iter().map(|r| &text[r.clone()]).collect();
    let schema = streamprep_ops::prepare::infer_schema(RowFormat::Ndjson, None, &sample, b',')
        .expect("schema");
    let (fast, errors) = FlatJsonDecoder::new(schema.clone())
        .decode(sample.iter().copied(), sample.len())
        .expect("decode");
    assert!(errors.is_empty(), "{errors:?}");
    let mut arrow = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(10_000)
        .build_decoder()
        .expect("decoder");
    arrow.decode(&text).expect("arrow decodes");
    let reference = arrow.flush().expect("flush").expect("batch");
    assert_eq!(fast, reference);
}

#[test]
fn inference_keeps_its_types_whatever_odd_rows_the_sample_holds() {
    use streamprep_connectors::generator::DavisGenerator;
    use streamprep_ops::codec::json_decode::infer_flat;
    let mut g = DavisGenerator::new(3);
    let mut rows: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let mut r = Vec::new();
            g.write_row(&mut r);
            r
        })
        .collect();
    rows.push(br#"{"temp_out": "oops", "extra": true}"#.to_vec());
    rows.push(b"not json".to_vec());
    let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
    let fast = infer_flat(&refs).expect("flat rows");
    // a nested value, an array of rows, scalars and arrays of scalars among the rows: the
    // same types, and the nested column is text (its JSON), never a reason to give up
    let mut with_nested = refs.clone();
    with_nested.push(br#"{"nested": {"a": 1}}"#);
    with_nested.push(br#"[{"temp_out": 1.5}, {"temp_out": 2}]"#);
    with_nested.push(b"42");
    with_nested.push(b"[1, 2]");
    with_nested.push(br#"{"temp_out": [1, 2]}"#);
    let general =
        streamprep_ops::prepare::infer_schema(RowFormat::Ndjson, None, &with_nested, b',')
            .expect("general");
    assert_eq!(
        general
            .field_with_name("nested")
            .expect("nested")
            .data_type(),
        &arrow_schema::DataType::Utf8
    );
    for f in fast.fields() {
        let g = general.field_with_name(f.name()).expect("same columns");
        assert_eq!(f.data_type(), g.data_type(), "{}", f.name());
    }
    assert_eq!(fast.fields().len() + 1, general.fields().len()); // + "nested"
    assert_eq!(fast.field(0).name(), "ts");
    assert_eq!(
        fast.field_with_name("temp_out").expect("col").data_type(),
        &arrow_schema::DataType::Float64
    );
    assert_eq!(
        fast.field_with_name("extra").expect("col").data_type(),
        &arrow_schema::DataType::Boolean
    );
}

#[test]
fn bad_csv_rows_go_to_dead_letters_and_do_not_change_the_schema() {
    let input = b"ts,temp,hum\n2019-01-01T00:00:00,-1.5,80\n2019-01-01T00:01:00,abc,81\n2019-01-01T00:02:00,2.5\n2019-01-01T00:03:00,3.5,82\n";
    let mut src = LineSource::new(&input[..], RowFormat::Csv);
    let out = Mem::default();
    let mut sink = WriterSink::new(out.clone(), Encoding::Csv);
    let dl_bytes = Mem::default();
    let mut dl = DeadLetterWriter::new(dl_bytes.clone());
    let s = run(
        &cfg("abs", 10, Method::Inline),
        &mut src,
        &mut sink,
        Some(&mut dl as &mut dyn DeadLetterSink),
    )
    .expect("run");
    assert_eq!(
        String::from_utf8(out.bytes()).expect("utf8"),
        "ts,temp,hum\n2019-01-01T00:00:00,1.5,80\n2019-01-01T00:03:00,3.5,82\n"
    );
    assert_eq!((s.rows_in, s.rows_out, s.dead_letters), (4, 2, 2));
    let dead = String::from_utf8(dl_bytes.bytes()).expect("utf8");
    assert!(
        dead.contains("abc") && dead.contains("2019-01-01T00:02:00,2.5"),
        "{dead}"
    );
}

/// A reader that gives `good` bytes, then fails (a connection reset, a disk error).
struct FailsAfter {
    data: Vec<u8>,
    at: usize,
}

impl std::io::Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.data.len() {
            return Err(std::io::Error::other("connection reset by peer"));
        }
        let n = buf.len().min(self.data.len() - self.at).min(4096);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_source_that_fails_half_way_costs_no_row_already_processed() {
    for method in [Method::Inline, Method::Pool { workers: 3 }] {
        for rows in [1usize, 1500, 4321] {
            let mut data = Vec::new();
            for i in 0..rows {
                data.extend_from_slice(format!("{{\"a\":{i}}}\n").as_bytes());
            }
            let file = tempfile::NamedTempFile::new().expect("tmp");
            let mut src = LineSource::new(FailsAfter { data, at: 0 }, RowFormat::Ndjson);
            // the real file sink: its writer thread must flush what it holds
            let mut sink = WriterSink::new(file.reopen().expect("reopen"), Encoding::Ndjson);
            let r = run(&cfg("abs", 100, method), &mut src, &mut sink, None);
            let e = r.expect_err("the source failed");
            assert!(e.to_string().contains("connection reset"), "{e}");
            let written = std::fs::read_to_string(file.path()).expect("read");
            // every whole message read before the failure is in the file
            assert_eq!(
                written.lines().count(),
                rows / 100 * 100,
                "{method:?} {rows}"
            );
        }
    }
}

/// Sinks with a fixed schema (CSV, Parquet) keep the types the steps give rows: normalizer
/// turns integer columns into float64, which a probe with an empty message did not show (it
/// passed the integers through, and every later float was cast back to 0).
#[test]
fn csv_and_parquet_keep_the_float_columns_steps_make_of_integers() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = super::cli::gen(dir.path(), 300);
    let run = |sink: &std::path::Path, source: &std::path::Path, chain: &str| {
        let r = super::cli::bin()
            .args(["run", "--chain", chain, "--buffer", "50"])
            .arg("--source")
            .arg(format!("file:{}", source.display()))
            .arg("--sink")
            .arg(format!("file:{}", sink.display()))
            .output()
            .expect("run");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let chain = "fillna_zeros,normalizer";
    let (nd, csv, pq, back) = (
        dir.path().join("o.ndjson"),
        dir.path().join("o.csv"),
        dir.path().join("o.parquet"),
        dir.path().join("back.ndjson"),
    );
    run(&nd, &input, chain);
    run(&csv, &input, chain);
    run(&pq, &input, chain);
    run(&back, &pq, "abs");
    let hum = |row: &serde_json::Value| row["hum_out"].as_f64().expect("hum_out");
    let want: Vec<f64> = std::fs::read_to_string(&nd)
        .expect("ndjson")
        .lines()
        .map(|l| hum(&serde_json::from_str(l).expect("row")))
        .collect();
    assert!(
        want.iter().filter(|v| v.fract() != 0.0).count() > 250,
        "normalised: fractions"
    );
    let from_parquet: Vec<f64> = std::fs::read_to_string(&back)
        .expect("parquet back")
        .lines()
        .map(|l| hum(&serde_json::from_str(l).expect("row")))
        .collect();
    assert_eq!(from_parquet, want);
    let text = std::fs::read_to_string(&csv).expect("csv");
    let head: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let at = head.iter().position(|h| *h == "hum_out").expect("hum_out");
    let from_csv: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(at)
                .expect("field")
                .parse()
                .expect("a float")
        })
        .collect();
    assert_eq!(from_csv, want);
}

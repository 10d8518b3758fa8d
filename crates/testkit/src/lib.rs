//! Test helpers shared by the crates' tests: batches from JSON literals, batches back to JSON,
//! and numeric comparison with stated tolerances.

pub mod postgres;

use std::sync::Arc;

use arrow_array::RecordBatch;

/// A batch from a JSON array of row objects, with the schema inferred (ints, floats, strings).
pub fn batch_from_json(json: &str) -> RecordBatch {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).expect("test JSON");
    let schema =
        arrow_json::reader::infer_json_schema_from_iterator(rows.iter().map(|r| Ok(r.clone())))
            .expect("inferable");
    let mut dec = arrow_json::ReaderBuilder::new(Arc::new(schema))
        .build_decoder()
        .expect("decoder");
    dec.serialize(&rows).expect("rows fit");
    dec.flush().expect("flush").expect("a batch")
}

/// A batch as a JSON array of row objects (explicit nulls), for assertions.
pub fn batch_to_json(batch: &RecordBatch) -> String {
    let mut out = Vec::new();
    let mut w = arrow_json::writer::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(&mut out);
    w.write(batch).expect("encodable");
    w.finish().expect("finish");
    drop(w);
    let s = String::from_utf8(out).expect("utf8");
    if s.is_empty() {
        "[]".into()
    } else {
        s
    }
}

/// `|a - b| <= atol + rtol * |b|`, with NaN equal to NaN (both missing).
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= atol + rtol * b.abs()
}

/// About 40 payloads: script tags, event handlers, `javascript:` URLs, SVG, broken
/// attributes, template syntax. Each would set `window.__xss` (or open a dialog) if it ran.
pub const XSS_PAYLOADS: &[&str] = &[
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=1\">",
    "<svg onload=window.__xss=1>",
    "\"><script>window.__xss=1</script>",
    "'><img src=x onerror=window.__xss=1>",
    "javascript:window.__xss=1",
    "<a href=\"javascript:window.__xss=1\">x</a>",
    "<iframe src=\"javascript:window.__xss=1\"></iframe>",
    "<body onload=window.__xss=1>",
    "<input autofocus onfocus=window.__xss=1>",
    "<details open ontoggle=window.__xss=1>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "{{constructor.constructor('window.__xss=1')()}}",
    "${window.__xss=1}",
    "{{7*7}}{% raw %}{{ x }}",
    "\" onmouseover=\"window.__xss=1",
    "' onfocus='window.__xss=1' autofocus '",
    "</textarea><script>window.__xss=1</script>",
    "</title><script>window.__xss=1</script>",
    "<style>@import 'javascript:window.__xss=1';</style>",
    "<object data=\"javascript:window.__xss=1\">",
    "<embed src=\"javascript:window.__xss=1\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__xss=1\">",
    "<svg><script>window.__xss=1</script></svg>",
    "<svg><animate onbegin=window.__xss=1 attributeName=x dur=1s>",
    "<video><source onerror=\"window.__xss=1\">",
    "<audio src=x onerror=window.__xss=1>",
    "<marquee onstart=window.__xss=1>",
    "<form action=\"javascript:window.__xss=1\"><button>x</button></form>",
    "<base href=\"javascript:window.__xss=1//\">",
    "&lt;script&gt;window.__xss=1&lt;/script&gt;",
    "&#60;img src=x onerror=window.__xss=1&#62;",
    "<scr<script>ipt>window.__xss=1</scr</script>ipt>",
    "<IMG SRC=JaVaScRiPt:window.__xss=1>",
    "\\u003cscript\\u003ewindow.__xss=1\\u003c/script\\u003e",
    "--><script>window.__xss=1</script><!--",
    "<![CDATA[<script>window.__xss=1</script>]]>",
    "<noscript><p title=\"</noscript><img src=x onerror=window.__xss=1>\">",
    "\"];window.__xss=1;//",
    "</script><script>window.__xss=1</script>",
    "<div style=\"background:url(javascript:window.__xss=1)\">x</div>",
    "<select><template><img src=x onerror=window.__xss=1></template></select>",
];

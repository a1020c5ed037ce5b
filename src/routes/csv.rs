//! CSV answers of every report and list: `format=csv` or `Accept: text/csv`.
//!
//! One writer for all of them: RFC 4180 (the `csv` crate: a header line,
//! CRLF line ends, fields quoted when they hold a comma, a quote or a line
//! break), and safe to open in a spreadsheet: a text cell that starts with
//! `=`, `+`, `-`, `@`, a tab or a carriage return (a formula to Excel,
//! LibreOffice and Google Sheets) gets a leading `'`. Numbers clickback
//! writes itself (counts, amounts, times) are never altered, so that a
//! negative total stays a number.
//!
//! Reports (bounded by their range) are written whole; lists are streamed:
//! a [`Pages`] source is read a page at a time while the client takes the
//! body, so a year of conversions is never held in memory.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::domain::query::Params;
use crate::error::ApiError;
use crate::store::StoreError;

/// The media type of every CSV answer.
const CSV_TYPE: &str = "text/csv; charset=utf-8";

/// One column: its header and whether its cells are numbers clickback
/// wrote (never escaped) or text that may come from outside (escaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header, also the JSON field the cell comes from.
    pub name: &'static str,
    /// Counts, amounts, times: written as they are.
    pub numeric: bool,
}

impl Column {
    /// A column of text (ids, subs, statuses, URLs).
    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            numeric: false,
        }
    }

    /// A column of numbers or amounts.
    pub const fn number(name: &'static str) -> Self {
        Self {
            name,
            numeric: true,
        }
    }
}

/// Whether the request asks for CSV: `format=csv` (`format=json` for
/// JSON), else an `Accept` header that names `text/csv`. Any other
/// `format` is refused.
pub fn wanted(req: &HttpRequest, params: &Params) -> Result<bool, ApiError> {
    match params.get_nonempty(&["format"])? {
        Some(format) if format.eq_ignore_ascii_case("csv") => Ok(true),
        Some(format) if format.eq_ignore_ascii_case("json") => Ok(false),
        Some(_) => Err(ApiError::invalid("format must be csv or json")),
        None => Ok(req
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv"))),
    }
}

/// A text cell as a spreadsheet shows it and never runs it: a leading `'`
/// before `= + - @`, a tab or a carriage return.
pub fn escape(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// A JSON value as one cell: strings as they are, `null` empty, a list as
/// its items separated by spaces, an object as its JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
        Value::Object(_) => value.to_string(),
    }
}

/// Writes records to bytes.
struct Writer(csv::Writer<Vec<u8>>);

impl Writer {
    fn new() -> Self {
        Self(
            csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new()),
        )
    }

    fn header(&mut self, columns: &[Column]) -> Result<(), csv::Error> {
        self.0.write_record(columns.iter().map(|c| c.name))
    }

    /// One row: each column's field of `row` (a JSON object), missing as empty.
    fn row(&mut self, columns: &[Column], row: &Value) -> Result<(), csv::Error> {
        let cells: Vec<String> = columns
            .iter()
            .map(|column| {
                let cell = plain(row.get(column.name).unwrap_or(&Value::Null));
                if column.numeric {
                    cell
                } else {
                    escape(&cell).into_owned()
                }
            })
            .collect();
        self.0.write_record(&cells)
    }

    /// Everything written.
    fn finish(self) -> Result<Bytes, csv::Error> {
        self.0
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// A CSV failure: writing to memory fails only on a bug.
fn csv_failed(e: csv::Error) -> ApiError {
    log::error!("500 internal_error: writing CSV: {e}");
    ApiError::new(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the CSV answer could not be written; the operator has been alerted in the log",
    )
}

/// A CSV answer with `filename` for the download.
fn response(filename: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder.content_type(CSV_TYPE);
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        builder.insert_header((header::CONTENT_DISPOSITION, value));
    }
    builder
}

/// A whole report as CSV: the header, then one line per row.
pub fn answer(
    filename: &str,
    columns: &[Column],
    rows: &[Value],
) -> Result<HttpResponse, ApiError> {
    let mut writer = Writer::new();
    writer.header(columns).map_err(csv_failed)?;
    for row in rows {
        writer.row(columns, row).map_err(csv_failed)?;
    }
    let body = writer.finish().map_err(csv_failed)?;
    Ok(response(filename).body(body))
}

/// The CSV columns of a postback log (`PostbackLogEntry`), with `payout`
/// when the viewer may see it.
pub fn postback_log_columns(payout: bool) -> Vec<Column> {
    let mut columns = vec![
        Column::number("at"),
        Column::number("seq"),
        Column::text("remote_ip"),
        Column::text("click_id"),
        Column::text("txid"),
        Column::text("goal"),
        Column::text("requested_status"),
        Column::number("amount"),
        Column::number("http_status"),
        Column::text("outcome"),
        Column::text("reason"),
        Column::text("detail"),
        Column::text("conversion_id"),
    ];
    if payout {
        columns.push(Column::number("payout"));
    }
    columns.extend([Column::text("ignored_params"), Column::text("warning")]);
    columns
}

/// A postback log (bounded by the log's size, so written whole) as CSV.
pub fn postback_log(
    entries: &[Box<serde_json::value::RawValue>],
    payout: bool,
) -> Result<HttpResponse, ApiError> {
    let rows: Vec<Value> = entries
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();
    answer("postbacks.csv", &postback_log_columns(payout), &rows)
}

/// A list read a page at a time.
pub trait Pages: Send + 'static {
    /// The next page's entries as JSON objects; `None` after the last page.
    fn next_page(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<Value>>, StoreError>> + Send;
}

/// Where a streamed answer is.
enum Step<P> {
    /// The header line is next.
    Header(P),
    /// Pages are next.
    Rows(P),
    /// Done (the end, or a failure).
    Done,
}

/// A list as CSV, streamed: the header at once, then each page as it is
/// read, only as fast as the client takes it. A store failure part-way
/// ends the body early (the status line is gone by then): the client sees
/// a transfer cut short, never a short list that looks whole; the failure
/// is logged.
pub fn stream<P: Pages>(filename: &str, columns: Vec<Column>, pages: P) -> HttpResponse {
    let body = futures_util::stream::unfold(Step::Header(pages), move |step| {
        let columns = columns.clone();
        async move {
            let mut writer = Writer::new();
            match step {
                Step::Done => None,
                Step::Header(pages) => {
                    let written = writer.header(&columns).and_then(|()| writer.finish());
                    Some(match written {
                        Ok(bytes) => (Ok(bytes), Step::Rows(pages)),
                        Err(e) => (Err(csv_failed(e)), Step::Done),
                    })
                }
                Step::Rows(mut pages) => match pages.next_page().await {
                    Ok(None) => None,
                    Ok(Some(rows)) => {
                        let written = rows
                            .iter()
                            .try_for_each(|row| writer.row(&columns, row))
                            .and_then(|()| writer.finish());
                        Some(match written {
                            Ok(bytes) => (Ok(bytes), Step::Rows(pages)),
                            Err(e) => (Err(csv_failed(e)), Step::Done),
                        })
                    }
                    // Logged by the conversion to an answer.
                    Err(e) => Some((Err(ApiError::from(e)), Step::Done)),
                },
            }
        }
    });
    response(filename).streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_plain_ones_left_alone() {
        for (cell, shown) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("camp 7", "camp 7"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(escape(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn rows_are_rfc_4180_with_numbers_untouched() {
        let columns = [
            Column::text("sub1"),
            Column::number("payout"),
            Column::text("history"),
        ];
        let rows = [
            serde_json::json!({"sub1": "a,\"b\"\nc", "payout": "-2.5", "history": ["pending:1", "approved:2"]}),
            serde_json::json!({"sub1": "-x", "payout": null}),
        ];
        let mut writer = Writer::new();
        writer.header(&columns).expect("header");
        for row in &rows {
            writer.row(&columns, row).expect("row");
        }
        let text = String::from_utf8(writer.finish().expect("bytes").to_vec()).expect("utf-8");
        assert_eq!(
            text,
            "sub1,payout,history\r\n\"a,\"\"b\"\"\nc\",-2.5,pending:1 approved:2\r\n'-x,,\r\n"
        );
    }
}

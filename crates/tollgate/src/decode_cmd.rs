//! `tollgate decode`: records in, normalized events out, one JSON per line.
//!
//! Events go to stdout; each rejection goes to stderr with its file and line
//! (and batch element); a summary line ends stderr. The exit status is 0
//! unless an input could not be opened (then 2, after the other inputs ran).

use std::io::{self, BufRead, Read, Write};

use anyhow::Context;
use tollgate_events::{Decoded, Decoder, RecordMeta, Tally};

use tollgate_service::file_input as input;

pub struct Options {
    pub inputs: Vec<String>,
}

/// Runs the command; returns the process exit code.
pub fn run(mut dec: Decoder, opts: Options) -> anyhow::Result<i32> {
    let inputs = if opts.inputs.is_empty() {
        vec!["-".to_owned()]
    } else {
        opts.inputs
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 << 10, stdout.lock());
    let stderr = io::stderr();
    let mut err = io::LineWriter::new(stderr.lock());
    let mut tally = Tally::default();
    let mut code = 0;
    for path in &inputs {
        let src = match input::open(path) {
            Ok(s) => s,
            Err(e) => {
                writeln!(err, "error: {e:#}")?;
                code = 2;
                continue;
            }
        };
        decode_source(&mut dec, src, &mut out, &mut err, &mut tally)?;
    }
    out.flush()?;
    writeln!(
        err,
        "summary: {tally} time_disagreements={}",
        dec.quirks.time_disagreements
    )?;
    Ok(code)
}

fn decode_source(
    dec: &mut Decoder,
    mut src: input::Source,
    out: &mut impl Write,
    err: &mut impl Write,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let limit = dec.limits().max_record_bytes;
    let meta = RecordMeta::default();
    let mut line = Vec::with_capacity(4096);
    let mut items = Vec::new();
    let mut lineno = 0u64;
    let mut emit =
        |items: &mut Vec<Decoded>, lineno: u64, tally: &mut Tally| -> anyhow::Result<()> {
            for d in items.drain(..) {
                tally.add(&d);
                match d {
                    Decoded::Event(ev) => {
                        serde_json::to_writer(&mut *out, &ev)?;
                        out.write_all(b"\n")?;
                    }
                    Decoded::Rejected(r) => writeln!(err, "{}:{lineno}: rejected: {r}", src.name)?,
                    Decoded::Skipped(_) => {}
                }
            }
            Ok(())
        };
    while input::read_line_bounded(&mut *src.reader, &mut line, limit)
        .with_context(|| format!("reading {}", src.name))?
    {
        lineno += 1;
        if lineno == 1 && input::first_line_opens_array(&line) {
            // A pretty-printed JSON array: read it whole and decode it as one
            // batch record, with the whole-file size as its limit.
            let mut rest = Vec::new();
            src.reader
                .read_to_end(&mut rest)
                .with_context(|| format!("reading {}", src.name))?;
            line.push(b'\n');
            line.extend_from_slice(&rest);
            let mut limits = dec.limits().clone();
            limits.max_record_bytes = line.len().max(limit);
            let mut whole = dec.clone().with_limits(limits);
            whole.decode(&line, &meta, &mut items);
            dec.quirks = whole.quirks;
            emit(&mut items, 1, tally)?;
            return Ok(());
        }
        dec.decode(&line, &meta, &mut items);
        emit(&mut items, lineno, tally)?;
    }
    let _ = src.reader.fill_buf();
    Ok(())
}

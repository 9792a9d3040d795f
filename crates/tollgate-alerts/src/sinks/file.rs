//! NDJSON of the updates (one `AlertUpdate` per line, the shape the service
//! has always written) to an appended file or stdout (`"-"`). A batch is
//! written and flushed before the lane counts it delivered, so acks follow
//! the flush. It does not fsync a file: a flushed line survives a crash of
//! Tollgate, not of the machine.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{Deliver, DeliveryError, Entry, Outcome};

pub struct FileSink {
    out: BufWriter<Box<dyn Write + Send>>,
    batch_max: usize,
}

impl FileSink {
    pub fn open(path: &Path, batch_max: usize) -> Result<FileSink, String> {
        let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            )
        };
        Ok(FileSink::new(out, batch_max))
    }

    pub fn new(out: Box<dyn Write + Send>, batch_max: usize) -> FileSink {
        FileSink {
            out: BufWriter::with_capacity(64 << 10, out),
            batch_max,
        }
    }
}

impl Deliver for FileSink {
    fn max_batch(&self) -> usize {
        self.batch_max
    }

    fn deliver(&mut self, batch: &[Entry]) -> Outcome {
        let mut line = Vec::with_capacity(1024);
        for e in batch {
            line.clear();
            serde_json::to_writer(&mut line, &e.update).expect("json");
            line.push(b'\n');
            if let Err(err) = self.out.write_all(&line) {
                return Outcome::failed(0, DeliveryError::Retry(format!("write: {err}")));
            }
        }
        match self.out.flush() {
            Ok(()) => Outcome::all(batch.len()),
            Err(err) => Outcome::failed(0, DeliveryError::Retry(format!("flush: {err}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testdata::alert;
    use tollgate_detect::{AlertUpdate, Severity};

    #[test]
    fn writes_one_update_per_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/alerts.ndjson");
        let mut s = FileSink::open(&p, 10).unwrap();
        let e = |ep: &str| Entry {
            update: AlertUpdate::Fired(alert(ep, Severity::Medium)),
            fired: None,
        };
        assert_eq!(s.deliver(&[e("a"), e("b")]), Outcome::all(2));
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<AlertUpdate> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, vec![e("a").update, e("b").update]);
    }
}

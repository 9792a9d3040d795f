//! A Kafka topic: key = tenant, value = the `AlertUpdate` as JSON, through
//! an idempotent rdkafka `BaseProducer`. A batch is produced, then flushed;
//! the lane counts as delivered only the prefix of the batch whose delivery
//! reports came back successful, so acks follow the broker's
//! acknowledgement. A failure in the middle of a batch re-sends the rest
//! (at-least-once: a consumer may see a duplicate after an outage).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tollgate_kafka::rdkafka;

use super::{Deliver, DeliveryError, Entry, Outcome};
use crate::config::KafkaConfig;

/// Collects delivery reports by message number.
#[derive(Default)]
pub struct Reports {
    done: Mutex<Vec<(usize, Option<String>)>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, n: usize) {
        let err = r.as_ref().err().map(|(e, _)| e.to_string());
        self.done.lock().expect("reports lock").push((n, err));
    }
}

pub struct KafkaSink {
    producer: BaseProducer<Reports>,
    topic: String,
    timeout: Duration,
    batch_max: usize,
    /// Numbers messages across batches, so a late report of an earlier
    /// batch is never taken for one of this batch.
    next_id: usize,
}

impl KafkaSink {
    pub fn new(c: &KafkaConfig, timeout: Duration, batch_max: usize) -> Result<KafkaSink, String> {
        let mut cc = ClientConfig::new();
        for (k, v) in &c.properties {
            cc.set(k, v.expose());
        }
        cc.set("bootstrap.servers", &c.bootstrap_servers)
            .set("enable.idempotence", "true");
        let producer = cc
            .create_with_context(Reports::default())
            .map_err(|e| format!("kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            topic: c.topic.clone(),
            timeout,
            batch_max,
            next_id: 0,
        })
    }
}

impl Deliver for KafkaSink {
    fn max_batch(&self) -> usize {
        self.batch_max
    }

    fn deliver(&mut self, batch: &[Entry]) -> Outcome {
        let first = self.next_id;
        let deadline = Instant::now() + self.timeout;
        for (i, e) in batch.iter().enumerate() {
            let payload = serde_json::to_vec(&e.update).expect("json");
            let mut rec = BaseRecord::with_opaque_to(&self.topic, first + i)
                .key(e.tenant())
                .payload(&payload);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((err, back)) => {
                        if Instant::now() >= deadline {
                            self.next_id = first + batch.len();
                            let _ = self.producer.flush(self.timeout);
                            return self.settle(first, batch.len(), Some(err.to_string()));
                        }
                        // Queue full: serve delivery reports, then retry.
                        self.producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                }
            }
        }
        self.next_id = first + batch.len();
        let flushed = self
            .producer
            .flush(self.timeout)
            .err()
            .map(|e| e.to_string());
        self.settle(first, batch.len(), flushed)
    }
}

impl KafkaSink {
    /// The delivered prefix of messages `first..first + n`.
    fn settle(&mut self, first: usize, n: usize, err: Option<String>) -> Outcome {
        let mut ok = vec![None::<Option<String>>; n];
        let mut done = self.producer.context().done.lock().expect("reports lock");
        done.retain(|(id, e)| {
            if (first..first + n).contains(id) {
                ok[id - first] = Some(e.clone());
                false
            } else {
                *id >= first + n
            }
        });
        drop(done);
        let delivered = ok.iter().take_while(|r| matches!(r, Some(None))).count();
        if delivered == n {
            return Outcome::all(n);
        }
        let why = ok
            .get(delivered)
            .cloned()
            .flatten()
            .flatten()
            .or(err)
            .unwrap_or_else(|| "no delivery report before the timeout".into());
        Outcome::failed(delivered, DeliveryError::Retry(format!("kafka: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testdata::alert;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::{Offset, TopicPartitionList};
    use tollgate_detect::{AlertUpdate, Severity};

    fn config(bootstrap: &str) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: bootstrap.into(),
            topic: "alerts".into(),
            properties: [("message.timeout.ms".to_string(), crate::Secret::new("2000"))]
                .into_iter()
                .collect(),
            delivery: Default::default(),
        }
    }

    fn entry(ep: &str) -> Entry {
        Entry {
            update: AlertUpdate::Fired(alert(ep, Severity::High)),
            fired: None,
        }
    }

    #[test]
    fn delivers_keyed_by_tenant_after_the_broker_acknowledges() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("alerts", 1, 1).unwrap();
        let mut sink = KafkaSink::new(
            &config(&cluster.bootstrap_servers()),
            Duration::from_secs(10),
            16,
        )
        .unwrap();
        assert_eq!(
            sink.deliver(&[entry("ep-1"), entry("ep-2")]),
            Outcome::all(2)
        );
        assert_eq!(sink.deliver(&[entry("ep-3")]), Outcome::all(1));

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "t")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("alerts", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 3 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let v: AlertUpdate = serde_json::from_slice(m.payload().unwrap()).unwrap();
                let AlertUpdate::Fired(a) = v else { panic!() };
                got.push((
                    String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    a.episode,
                ));
            }
        }
        let want: Vec<(String, String)> = ["ep-1", "ep-2", "ep-3"]
            .iter()
            .map(|e| ("acme".to_string(), e.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_unreachable_broker_is_a_retry_with_nothing_delivered() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = config(&format!("127.0.0.1:{port}"));
        c.properties
            .insert("message.timeout.ms".into(), crate::Secret::new("300"));
        let mut sink = KafkaSink::new(&c, Duration::from_secs(5), 16).unwrap();
        let out = sink.deliver(&[entry("ep-1"), entry("ep-2")]);
        assert_eq!(out.delivered, 0);
        assert!(
            matches!(out.error, Some(DeliveryError::Retry(_))),
            "{out:?}"
        );
    }
}

//! A run's record maker, [`Recorder`]: the records of [`Record::from_message`], plus, with
//! `--grpc-descriptor-set FILE`, each gRPC message decoded to JSON (`grpc.messages`, or
//! `grpc.decode_error` counted on the output's counters under the error's reason). A gRPC
//! response without capture facts (read back from a file) is named after the call of the
//! request with its id, remembered for the last [`RECENT_CALLS`] requests.

use crate::descriptors::{Call, DescriptorSetError, GrpcDescriptors};
use crate::grpc::{is_grpc_head, split, GrpcRecord};
use crate::Record;
use shadowtap_api::{CoreSettings, Counters, Kind, Message, PluginError};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

shadowtap_api::register_shared_args! {
    heading: "gRPC (records and --prettify-http)",
    args: GrpcRecordArgs,
}

/// The flag shared by every output that writes records and by `--prettify-http`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GrpcRecordArgs {
    /// Decode gRPC messages to JSON in structured records and in --prettify-http output with this FileDescriptorSet (protoc --include_imports --descriptor_set_out=FILE)
    #[arg(
        id = "grpc-descriptor-set",
        long = "grpc-descriptor-set",
        value_name = "FILE"
    )]
    pub grpc_descriptor_set: Option<PathBuf>,
}

impl GrpcRecordArgs {
    /// The descriptor set named by the flag, loaded (`None` without the flag).
    pub fn load(&self) -> Result<Option<Arc<GrpcDescriptors>>, DescriptorSetError> {
        self.grpc_descriptor_set
            .as_deref()
            .map(|path| GrpcDescriptors::load(path).map(Arc::new))
            .transpose()
    }
}

/// The run's `--grpc-descriptor-set`, loaded; a bad file is a usage error naming it.
pub fn descriptors_of(
    settings: &CoreSettings,
) -> Result<Option<Arc<GrpcDescriptors>>, PluginError> {
    settings
        .shared_args::<GrpcRecordArgs>()?
        .load()
        .map_err(|e| PluginError::usage("--grpc-descriptor-set", e.to_string()))
}

/// Requests whose call is remembered for naming their responses.
pub const RECENT_CALLS: usize = 4096;

/// Makes the records of one output.
#[derive(Debug, Default)]
pub struct Recorder {
    descriptors: Option<Arc<GrpcDescriptors>>,
    limit: usize,
    calls: Mutex<RecentCalls>,
}

impl Recorder {
    /// Decodes gRPC messages with `descriptors` (if any), within `limit` decoded bytes per
    /// message body.
    pub fn new(descriptors: Option<Arc<GrpcDescriptors>>, limit: usize) -> Recorder {
        Recorder {
            descriptors,
            limit,
            calls: Mutex::default(),
        }
    }

    /// The recorder of a run: its `--grpc-descriptor-set`, its `--copy-buffer-size` as limit.
    pub fn from_settings(settings: &CoreSettings) -> Result<Recorder, PluginError> {
        Ok(Recorder::new(
            descriptors_of(settings)?,
            settings.copy_buffer_size,
        ))
    }

    /// The record of `msg`; a gRPC decoding failure is counted on `counters`.
    pub fn record(&self, msg: &Message, counters: &Counters) -> Record {
        let mut record = Record::from_message(msg);
        if let Some(grpc) = record.grpc.as_mut() {
            self.complete(msg, grpc, counters);
        }
        record
    }

    /// Whether gRPC messages are decoded (a descriptor set was given).
    pub fn decodes(&self) -> bool {
        self.descriptors.is_some()
    }

    /// The `grpc` object of `msg`'s record alone (`None` when it is not gRPC).
    pub fn grpc(&self, msg: &Message, counters: &Counters) -> Option<GrpcRecord> {
        let mut grpc = crate::grpc_record_of(msg)?;
        self.complete(msg, &mut grpc, counters);
        Some(grpc)
    }

    /// Names the call of a response read back, and decodes the messages.
    fn complete(&self, msg: &Message, grpc: &mut GrpcRecord, counters: &Counters) {
        self.name_call(msg, grpc);
        if let Some(descriptors) = &self.descriptors {
            self.decode(descriptors, msg, grpc, counters);
        }
    }

    fn name_call(&self, msg: &Message, grpc: &mut GrpcRecord) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match (&grpc.service, &grpc.method) {
            (Some(service), Some(method)) if msg.kind() == Kind::Request => {
                calls.remember(msg.id(), service, method)
            }
            (None, None) if msg.kind() != Kind::Request => {
                if let Some((service, method)) = calls.get(msg.id()) {
                    grpc.service = Some(service.clone());
                    grpc.method = Some(method.clone());
                }
            }
            _ => {}
        }
    }

    fn decode(
        &self,
        descriptors: &GrpcDescriptors,
        msg: &Message,
        grpc: &mut GrpcRecord,
        counters: &Counters,
    ) {
        let Some(parts) = split(&msg.payload) else {
            return;
        };
        if !is_grpc_head(parts.head) {
            return; // The body was rewritten (--prettify-http): not length-prefixed any more.
        }
        let call = Call {
            service: grpc.service.as_deref().unwrap_or_default(),
            method: grpc.method.as_deref().unwrap_or_default(),
            kind: msg.kind(),
            encoding: grpc.encoding.as_deref(),
        };
        let decoded = descriptors.decode(call, &parts.body, self.limit);
        if let Some(error) = &decoded.error {
            counters.extra(error.reason()).fetch_add(1, Relaxed);
            grpc.decode_error = Some(error.to_string());
        }
        if !decoded.messages.is_empty() || decoded.error.is_none() {
            grpc.messages = Some(decoded.messages);
        }
    }
}

/// The calls of the last [`RECENT_CALLS`] gRPC requests, by id.
#[derive(Debug, Default)]
struct RecentCalls {
    by_id: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

impl RecentCalls {
    fn remember(&mut self, id: &str, service: &str, method: &str) {
        let call = (service.to_string(), method.to_string());
        if self.by_id.insert(id.to_string(), call).is_none() {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > RECENT_CALLS {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
    }

    fn get(&self, id: &str) -> Option<&(String, String)> {
        self.by_id.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::tests::fixture;
    use crate::grpc::framed;
    use shadowtap_api::{Ledger, Meta, Role};

    fn grpc_message(kind: Kind, id: &str, start: &str, body: &[u8], tail: &str) -> Message {
        let mut payload = format!(
            "{start}\r\ncontent-type: application/grpc\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        payload.extend_from_slice(body);
        payload.extend_from_slice(tail.as_bytes());
        Message::new(Meta::new(kind, id, 1, 0).unwrap(), payload)
    }

    fn recorder() -> Recorder {
        Recorder::new(Some(Arc::new(fixture())), 1 << 20)
    }

    #[test]
    fn a_response_read_back_is_named_and_decoded_after_its_request() {
        let counters = Ledger::new().register("output-test", Role::Output);
        let recorder = recorder();
        let note = framed(&[(false, b"\x0a\x02hi")]);
        let request = grpc_message(
            Kind::Request,
            "a1",
            "POST /shadowtap.fixture.Echo/Unary HTTP/2",
            &note,
            "",
        );
        let response = grpc_message(
            Kind::Response,
            "a1",
            "HTTP/2 200",
            &note,
            "grpc-status: 0\r\n\r\n",
        );
        let record = recorder.record(&request, &counters);
        assert_eq!(record.grpc.unwrap().messages.unwrap()[0]["text"], "hi");
        let grpc = recorder.record(&response, &counters).grpc.unwrap();
        assert_eq!(grpc.method.as_deref(), Some("Unary"));
        assert_eq!(grpc.status, Some(0));
        assert_eq!(grpc.messages.unwrap()[0]["text"], "hi");
        assert!(counters.snapshot().extra.is_empty());
    }

    #[test]
    fn hostile_bodies_give_a_decode_error_counted_by_reason() {
        let counters = Ledger::new().register("output-test", Role::Output);
        let recorder = recorder();
        let start = "POST /shadowtap.fixture.Echo/Bidi HTTP/2";
        let mut claim = framed(&[(false, b"\x0a\x01a")]);
        claim.extend([0, 0xff, 0xff, 0xff, 0xff, 0]);
        let grpc = recorder
            .record(
                &grpc_message(Kind::Request, "b1", start, &claim, ""),
                &counters,
            )
            .grpc
            .unwrap();
        assert_eq!(grpc.messages.as_ref().unwrap()[0]["text"], "a");
        assert!(grpc
            .decode_error
            .unwrap()
            .starts_with("message 1: declares 4294967295"));
        let unknown = "POST /shadowtap.fixture.Echo/Gone HTTP/2";
        let grpc = recorder
            .record(
                &grpc_message(Kind::Request, "b2", unknown, &claim, ""),
                &counters,
            )
            .grpc
            .unwrap();
        assert!(grpc.messages.is_none());
        let stray = grpc_message(Kind::Response, "b3", "HTTP/2 200", &claim, "");
        recorder.record(&stray, &counters);
        let extra = counters.snapshot().extra;
        for reason in [
            "grpc decode: too large",
            "grpc decode: unknown method",
            "grpc decode: call unknown",
        ] {
            assert!(
                extra.contains(&(reason.to_string(), 1)),
                "{reason}: {extra:?}"
            );
        }
    }

    #[test]
    fn without_descriptors_nothing_is_decoded_or_counted() {
        let counters = Ledger::new().register("output-test", Role::Output);
        let body = framed(&[(false, b"\x0a\x01a")]);
        let msg = grpc_message(Kind::Request, "c", "POST /a.B/C HTTP/2", &body, "");
        let grpc = Recorder::default().record(&msg, &counters).grpc.unwrap();
        assert_eq!((grpc.message_count, grpc.messages), (1, None));
        assert!(counters.snapshot().extra.is_empty());
    }

    #[test]
    fn the_calls_remembered_are_bounded() {
        let mut calls = RecentCalls::default();
        for i in 0..RECENT_CALLS + 10 {
            calls.remember(&i.to_string(), "s", "m");
        }
        assert_eq!(calls.by_id.len(), RECENT_CALLS);
        assert!(calls.get("0").is_none() && calls.get(&RECENT_CALLS.to_string()).is_some());
    }
}

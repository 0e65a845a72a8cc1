//! `--grpc-descriptor-set FILE`: gRPC messages decoded to proto3 JSON with the method's input
//! type (requests) or output type (responses), from a FileDescriptorSet written by
//! `protoc --include_imports --descriptor_set_out=FILE`.
//!
//! Bounds: a body's messages are decoded within one byte budget (the caller's limit, the run's
//! `--copy-buffer-size`) counted on their decoded (inflated) sizes. A length prefix beyond
//! what is left of it fails before anything is allocated, and inflating stops one byte past
//! it. A message that fails leaves `null` in its place and the others are still decoded.

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;
use shadowtap_api::Kind;
use shadowtap_h2::{grpc_frames, GrpcFrame};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a descriptor set cannot be used (a startup error).
#[derive(Debug, thiserror::Error)]
pub enum DescriptorSetError {
    /// The file cannot be read.
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid FileDescriptorSet.
    #[error("{}: not a valid FileDescriptorSet (write one with protoc --include_imports --descriptor_set_out=FILE): {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the descriptor reader said.
        source: prost_reflect::DescriptorError,
    },
    /// The set defines no service, so no gRPC call can be decoded with it.
    #[error("{}: the FileDescriptorSet defines no service", path.display())]
    NoService {
        /// The file.
        path: PathBuf,
    },
}

/// Why a gRPC message (or a whole body) was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum GrpcDecodeError {
    /// A response whose request was not seen: its method is not known.
    #[error("the call is unknown (its request was not seen)")]
    UnknownCall,
    /// The service is not in the descriptor set.
    #[error("unknown service {service:?}")]
    UnknownService {
        /// `package.Service`.
        service: String,
    },
    /// The service has no such method.
    #[error("unknown method {method:?} of service {service}")]
    UnknownMethod {
        /// `package.Service`.
        service: String,
        /// `Method`.
        method: String,
    },
    /// A length prefix beyond what is left of the decoding budget.
    #[error("message {index}: declares {declared} bytes, beyond the {left} left of the {limit}-byte limit")]
    TooLarge {
        /// Index in the body.
        index: usize,
        /// The claimed length.
        declared: u32,
        /// Budget left.
        left: usize,
        /// The whole budget.
        limit: usize,
    },
    /// The body ends before the message does (a cut capture).
    #[error("message {index}: cut short, {present} of {declared} bytes")]
    Cut {
        /// Index in the body.
        index: usize,
        /// Bytes there.
        present: usize,
        /// The claimed length.
        declared: u32,
    },
    /// The compressed flag is set but the message names no `grpc-encoding`.
    #[error("message {index}: compressed, but no grpc-encoding names how")]
    NoEncoding {
        /// Index in the body.
        index: usize,
    },
    /// A compression other than gzip and deflate.
    #[error("message {index}: grpc-encoding {encoding:?} is not decoded (gzip and deflate are)")]
    UnsupportedEncoding {
        /// Index in the body.
        index: usize,
        /// The encoding named.
        encoding: String,
    },
    /// The compressed message does not inflate.
    #[error("message {index}: does not inflate as {encoding}: {source}")]
    Inflate {
        /// Index in the body.
        index: usize,
        /// `gzip` or `deflate`.
        encoding: &'static str,
        /// The inflater's error.
        source: std::io::Error,
    },
    /// The message inflates beyond what is left of the budget.
    #[error("message {index}: inflates beyond the {left} bytes left of the {limit}-byte limit")]
    InflatedTooLarge {
        /// Index in the body.
        index: usize,
        /// Budget left.
        left: usize,
        /// The whole budget.
        limit: usize,
    },
    /// The bytes are not a message of the method's type.
    #[error("message {index}: not a {type_name}: {source}")]
    Undecodable {
        /// Index in the body.
        index: usize,
        /// The message type's full name.
        type_name: String,
        /// The protobuf decoder's error.
        source: prost::DecodeError,
    },
    /// The decoded message has a value JSON cannot hold.
    #[error("message {index}: not representable as JSON: {source}")]
    Unrepresentable {
        /// Index in the body.
        index: usize,
        /// The serialiser's error.
        source: serde_json::Error,
    },
}

impl GrpcDecodeError {
    /// The ledger figure it is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            GrpcDecodeError::UnknownCall => "grpc decode: call unknown",
            GrpcDecodeError::UnknownService { .. } | GrpcDecodeError::UnknownMethod { .. } => {
                "grpc decode: unknown method"
            }
            GrpcDecodeError::TooLarge { .. } | GrpcDecodeError::InflatedTooLarge { .. } => {
                "grpc decode: too large"
            }
            GrpcDecodeError::Cut { .. } => "grpc decode: cut short",
            GrpcDecodeError::NoEncoding { .. }
            | GrpcDecodeError::UnsupportedEncoding { .. }
            | GrpcDecodeError::Inflate { .. } => "grpc decode: bad compression",
            GrpcDecodeError::Undecodable { .. } | GrpcDecodeError::Unrepresentable { .. } => {
                "grpc decode: bad message"
            }
        }
    }
}

/// What decoding a body gave: one JSON value per message (`null` where it failed), and the
/// first failure.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Each message as proto3 JSON, in order.
    pub messages: Vec<Value>,
    /// The first failure.
    pub error: Option<GrpcDecodeError>,
}

/// The call a body belongs to, and which way it goes.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// `package.Service`.
    pub service: &'a str,
    /// `Method`.
    pub method: &'a str,
    /// Request (the input type) or response (the output type).
    pub kind: Kind,
    /// `grpc-encoding`, for compressed messages.
    pub encoding: Option<&'a str>,
}

/// A loaded descriptor set.
#[derive(Debug)]
pub struct GrpcDescriptors {
    pool: DescriptorPool,
}

impl GrpcDescriptors {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<GrpcDescriptors, DescriptorSetError> {
        let bytes = std::fs::read(path).map_err(|source| DescriptorSetError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let pool = DescriptorPool::decode(bytes.as_slice()).map_err(|source| {
            DescriptorSetError::Invalid {
                path: path.to_path_buf(),
                source,
            }
        })?;
        if pool.services().len() == 0 {
            return Err(DescriptorSetError::NoService {
                path: path.to_path_buf(),
            });
        }
        Ok(GrpcDescriptors { pool })
    }

    /// Decodes the messages of `body`, within `limit` decoded bytes in all.
    pub fn decode(&self, call: Call<'_>, body: &[u8], limit: usize) -> Decoded {
        let message_type = match self.message_type(call) {
            Ok(found) => found,
            Err(error) => {
                return Decoded {
                    messages: Vec::new(),
                    error: Some(error),
                }
            }
        };
        let mut decoded = Decoded::default();
        let mut budget = Budget { left: limit, limit };
        for (index, frame) in grpc_frames(body).enumerate() {
            let value = decode_one(&message_type, call.encoding, index, frame, &mut budget);
            decoded.messages.push(match value {
                Ok(value) => value,
                Err(error) => {
                    decoded.error.get_or_insert(error);
                    Value::Null
                }
            });
        }
        decoded
    }

    fn message_type(&self, call: Call<'_>) -> Result<MessageDescriptor, GrpcDecodeError> {
        if call.service.is_empty() || call.method.is_empty() {
            return Err(GrpcDecodeError::UnknownCall);
        }
        let service = self.pool.get_service_by_name(call.service).ok_or_else(|| {
            GrpcDecodeError::UnknownService {
                service: call.service.to_string(),
            }
        })?;
        let method = service
            .methods()
            .find(|m| m.name() == call.method)
            .ok_or_else(|| GrpcDecodeError::UnknownMethod {
                service: call.service.to_string(),
                method: call.method.to_string(),
            })?;
        Ok(match call.kind {
            Kind::Request => method.input(),
            _ => method.output(),
        })
    }
}

/// Decoded bytes still allowed for one body.
struct Budget {
    left: usize,
    limit: usize,
}

fn decode_one(
    message_type: &MessageDescriptor,
    encoding: Option<&str>,
    index: usize,
    frame: GrpcFrame<'_>,
    budget: &mut Budget,
) -> Result<Value, GrpcDecodeError> {
    if usize::try_from(frame.declared_len).map_or(true, |n| n > budget.left) {
        return Err(GrpcDecodeError::TooLarge {
            index,
            declared: frame.declared_len,
            left: budget.left,
            limit: budget.limit,
        });
    }
    if frame.is_cut() {
        return Err(GrpcDecodeError::Cut {
            index,
            present: frame.data.len(),
            declared: frame.declared_len,
        });
    }
    let inflated;
    let bytes = if frame.compressed {
        inflated = inflate(frame.data, encoding, index, budget)?;
        &inflated[..]
    } else {
        frame.data
    };
    budget.left -= bytes.len();
    let message = DynamicMessage::decode(message_type.clone(), bytes).map_err(|source| {
        GrpcDecodeError::Undecodable {
            index,
            type_name: message_type.full_name().to_string(),
            source,
        }
    })?;
    let options = SerializeOptions::new().skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| GrpcDecodeError::Unrepresentable { index, source })
}

/// Inflates one compressed message, reading at most one byte past the budget.
fn inflate(
    data: &[u8],
    encoding: Option<&str>,
    index: usize,
    budget: &Budget,
) -> Result<Vec<u8>, GrpcDecodeError> {
    let encoding = encoding.ok_or(GrpcDecodeError::NoEncoding { index })?;
    let (name, reader): (&'static str, Box<dyn Read + '_>) =
        if encoding.eq_ignore_ascii_case("gzip") {
            ("gzip", Box::new(flate2::read::GzDecoder::new(data)))
        } else if encoding.eq_ignore_ascii_case("deflate") {
            ("deflate", Box::new(flate2::read::ZlibDecoder::new(data)))
        } else if encoding.eq_ignore_ascii_case("identity") {
            return Err(GrpcDecodeError::NoEncoding { index });
        } else {
            return Err(GrpcDecodeError::UnsupportedEncoding {
                index,
                encoding: encoding.to_string(),
            });
        };
    let mut out = Vec::new();
    reader
        .take(budget.left as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| GrpcDecodeError::Inflate {
            index,
            encoding: name,
            source,
        })?;
    if out.len() > budget.left {
        return Err(GrpcDecodeError::InflatedTooLarge {
            index,
            left: budget.left,
            limit: budget.limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::grpc::framed;
    use std::io::Write;

    /// The fixtures' descriptor set (`shadowtap.fixture.Echo`, message `Note`).
    pub(crate) fn fixture() -> GrpcDescriptors {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/h2/descriptor_set.pb"
        );
        GrpcDescriptors::load(Path::new(path)).unwrap()
    }

    fn call<'a>(method: &'a str, kind: Kind, encoding: Option<&'static str>) -> Call<'a> {
        Call {
            service: "shadowtap.fixture.Echo",
            method,
            kind,
            encoding,
        }
    }

    /// `Note { text: "hi", seq: 7 }`.
    const NOTE: &[u8] = b"\x0a\x02hi\x10\x07";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn messages_decode_with_the_methods_types_and_defaults_shown() {
        let body = framed(&[(false, NOTE), (false, b"")]);
        let decoded = fixture().decode(call("ClientStream", Kind::Request, None), &body, 1 << 20);
        assert!(decoded.error.is_none(), "{:?}", decoded.error);
        assert_eq!(
            decoded.messages,
            vec![
                serde_json::json!({"text": "hi", "seq": 7, "blob": ""}),
                serde_json::json!({"text": "", "seq": 0, "blob": ""}),
            ]
        );
    }

    #[test]
    fn gzip_messages_are_inflated_first() {
        let body = framed(&[(true, &gzip(NOTE))]);
        let decoded = fixture().decode(call("Unary", Kind::Response, Some("gzip")), &body, 1 << 20);
        assert!(decoded.error.is_none(), "{:?}", decoded.error);
        assert_eq!(decoded.messages[0]["text"], "hi");
    }

    fn first_error(body: &[u8], call: Call, limit: usize) -> (Vec<Value>, GrpcDecodeError) {
        let decoded = fixture().decode(call, body, limit);
        (decoded.messages, decoded.error.expect("an error"))
    }

    #[test]
    fn a_claimed_4_gib_is_refused_before_any_allocation() {
        let mut body = framed(&[(false, NOTE)]);
        body.extend([0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let (messages, error) = first_error(&body, call("Bidi", Kind::Request, None), 1 << 20);
        assert!(matches!(
            error,
            GrpcDecodeError::TooLarge {
                index: 1,
                declared: u32::MAX,
                ..
            }
        ));
        assert_eq!(error.reason(), "grpc decode: too large");
        assert_eq!(messages[0]["seq"], 7);
        assert_eq!(messages[1], Value::Null);
        assert!(error
            .to_string()
            .starts_with("message 1: declares 4294967295 bytes"));
    }

    #[test]
    fn cut_bad_gzip_and_wrong_types_fail_only_their_message() {
        let mut body = framed(&[
            (true, b"not gzip at all"),
            (false, b"\x0a\xff"),
            (false, NOTE),
        ]);
        body.extend([0, 0, 0, 0, 9, 0x0a]);
        let decoded = fixture().decode(call("Bidi", Kind::Request, Some("gzip")), &body, 1 << 20);
        assert_eq!(decoded.messages.len(), 4);
        assert_eq!(decoded.messages[2]["text"], "hi");
        assert!(decoded.messages[0].is_null() && decoded.messages[1].is_null());
        assert!(decoded.messages[3].is_null());
        let error = decoded.error.unwrap();
        assert!(
            matches!(error, GrpcDecodeError::Inflate { index: 0, .. }),
            "{error}"
        );
        let (_, wrong) = first_error(
            &framed(&[(false, b"\x0a\xff")]),
            call("Bidi", Kind::Request, None),
            1 << 20,
        );
        assert!(wrong
            .to_string()
            .starts_with("message 0: not a shadowtap.fixture.Note"));
        let (_, cut) = first_error(
            &[0, 0, 0, 0, 9, 0x0a],
            call("Bidi", Kind::Request, None),
            1 << 20,
        );
        assert!(matches!(
            cut,
            GrpcDecodeError::Cut {
                index: 0,
                present: 1,
                declared: 9
            }
        ));
    }

    #[test]
    fn compression_must_be_named_and_known_and_stay_within_the_budget() {
        let body = framed(&[(true, &gzip(NOTE))]);
        let (_, none) = first_error(&body, call("Unary", Kind::Request, None), 1 << 20);
        assert!(matches!(none, GrpcDecodeError::NoEncoding { index: 0 }));
        let (_, snappy) = first_error(&body, call("Unary", Kind::Request, Some("snappy")), 1 << 20);
        assert_eq!(snappy.reason(), "grpc decode: bad compression");
        let bomb = framed(&[(true, &gzip(&vec![0u8; 1 << 20]))]);
        let (_, big) = first_error(&bomb, call("Unary", Kind::Request, Some("gzip")), 4096);
        assert!(
            matches!(
                big,
                GrpcDecodeError::InflatedTooLarge {
                    index: 0,
                    left: 4096,
                    ..
                }
            ),
            "{big}"
        );
    }

    #[test]
    fn unknown_calls_are_named() {
        let body = framed(&[(false, NOTE)]);
        let (messages, error) = first_error(&body, call("Nope", Kind::Request, None), 1 << 20);
        assert!(messages.is_empty());
        assert_eq!(
            error.to_string(),
            "unknown method \"Nope\" of service shadowtap.fixture.Echo"
        );
        let other = Call {
            service: "x.Y",
            ..call("Unary", Kind::Request, None)
        };
        assert_eq!(
            first_error(&body, other, 1 << 20).1.reason(),
            "grpc decode: unknown method"
        );
        let unnamed = Call {
            service: "",
            ..call("", Kind::Response, None)
        };
        assert!(matches!(
            first_error(&body, unnamed, 1 << 20).1,
            GrpcDecodeError::UnknownCall
        ));
    }

    #[test]
    fn unreadable_garbage_and_serviceless_sets_are_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("record-desc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pb");
        std::fs::write(&garbage, b"\xff\xff\xff\xff garbage").unwrap();
        let error = GrpcDescriptors::load(&garbage).unwrap_err();
        assert!(matches!(error, DescriptorSetError::Invalid { .. }));
        assert!(error.to_string().contains("garbage.pb"), "{error}");
        let empty = dir.join("empty.pb");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            GrpcDescriptors::load(&empty).unwrap_err(),
            DescriptorSetError::NoService { .. }
        ));
        let missing = GrpcDescriptors::load(&dir.join("missing.pb")).unwrap_err();
        assert!(
            missing.to_string().contains("missing.pb: cannot read it"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Handshake messages: reassembly across records (several per record, one across many), and
//! the few fields decryption needs from ClientHello, ServerHello and EncryptedExtensions.

pub(crate) const TYPE_HELLO_REQUEST: u8 = 0;
pub(crate) const TYPE_CLIENT_HELLO: u8 = 1;
pub(crate) const TYPE_SERVER_HELLO: u8 = 2;
pub(crate) const TYPE_END_OF_EARLY_DATA: u8 = 5;
pub(crate) const TYPE_ENCRYPTED_EXTENSIONS: u8 = 8;
pub(crate) const TYPE_FINISHED: u8 = 20;
pub(crate) const TYPE_KEY_UPDATE: u8 = 24;

use crate::TlsFailure;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ENCRYPT_THEN_MAC: u16 = 22;
const EXT_EARLY_DATA: u16 = 42;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 §4.1.3).
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Bodies kept for parsing are bounded; other messages (certificates…) are skipped unbuffered.
const MAX_KEPT_BODY: usize = 1 << 17;

/// The handshake encoding is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadHandshake;

/// Reassembles handshake messages from the handshake bytes of one direction.
#[derive(Default)]
pub(crate) struct HandshakeReader {
    header: [u8; 4],
    header_len: usize,
    body: Vec<u8>,
    remaining: usize,
    keep: bool,
}

fn kept(msg_type: u8) -> bool {
    matches!(
        msg_type,
        TYPE_CLIENT_HELLO | TYPE_SERVER_HELLO | TYPE_ENCRYPTED_EXTENSIONS | TYPE_KEY_UPDATE
    )
}

impl HandshakeReader {
    /// Takes handshake bytes; calls `on_message(type, body)` for each completed message (the
    /// body is empty for message types that are not parsed).
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_message: impl FnMut(u8, &[u8]) -> Result<(), TlsFailure>,
    ) -> Result<(), TlsFailure> {
        loop {
            if self.header_len < 4 {
                let n = (4 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len < 4 {
                    return Ok(());
                }
                let [msg_type, a, b, c] = self.header;
                self.remaining = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.keep = kept(msg_type);
                if self.keep && self.remaining > MAX_KEPT_BODY {
                    return Err(TlsFailure::Malformed);
                }
                self.body.clear();
            }
            let n = self.remaining.min(data.len());
            if self.keep {
                self.body.extend_from_slice(&data[..n]);
            }
            self.remaining -= n;
            data = &data[n..];
            if self.remaining > 0 {
                return Ok(());
            }
            self.header_len = 0;
            on_message(self.header[0], &self.body)?;
            if data.is_empty() {
                return Ok(());
            }
        }
    }

    /// Whether a message is partly read (a key change must fall on a message boundary).
    pub fn in_message(&self) -> bool {
        self.header_len > 0
    }

    /// Bytes held for a partly read message.
    pub fn held(&self) -> usize {
        if self.in_message() {
            self.body.len()
        } else {
            0
        }
    }
}

/// A bounds-checked reader over handshake encodings.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadHandshake> {
        if n > self.0.len() {
            return Err(BadHandshake);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, BadHandshake> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BadHandshake> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], BadHandshake> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Result<&'a [u8], BadHandshake> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn random(&mut self) -> Result<[u8; 32], BadHandshake> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
}

/// Calls `f(type, data)` for each extension of an extension block (absent block: none).
fn extensions(
    cursor: &mut Cursor<'_>,
    mut f: impl FnMut(u16, &[u8]) -> Result<(), BadHandshake>,
) -> Result<(), BadHandshake> {
    if cursor.0.is_empty() {
        return Ok(());
    }
    let mut block = Cursor(cursor.vec16()?);
    while !block.0.is_empty() {
        let ext_type = block.u16()?;
        f(ext_type, block.vec16()?)?;
    }
    Ok(())
}

fn first_alpn(data: &[u8]) -> Result<Option<String>, BadHandshake> {
    let mut list = Cursor(Cursor(data).vec16()?);
    if list.0.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(list.vec8()?).into_owned()))
}

fn server_name(data: &[u8]) -> Result<Option<String>, BadHandshake> {
    let mut list = Cursor(Cursor(data).vec16()?);
    while !list.0.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == 0 {
            return Ok(Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Ok(None)
}

/// What decryption needs from a ClientHello.
#[derive(Debug, Default)]
pub(crate) struct ClientHello {
    pub random: [u8; 32],
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub encrypt_then_mac: bool,
    pub early_data: bool,
}

pub(crate) fn parse_client_hello(body: &[u8]) -> Result<ClientHello, BadHandshake> {
    let mut c = Cursor(body);
    c.u16()?;
    let mut hello = ClientHello {
        random: c.random()?,
        ..ClientHello::default()
    };
    c.vec8()?;
    c.vec16()?;
    c.vec8()?;
    extensions(&mut c, |ext, data| {
        match ext {
            EXT_SERVER_NAME => hello.sni = server_name(data)?,
            EXT_ALPN => hello.alpn = first_alpn(data)?,
            EXT_ENCRYPT_THEN_MAC => hello.encrypt_then_mac = true,
            EXT_EARLY_DATA => hello.early_data = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok(hello)
}

/// What decryption needs from a ServerHello.
#[derive(Debug, Default)]
pub(crate) struct ServerHello {
    pub random: [u8; 32],
    pub suite: u16,
    /// The negotiated version: supported_versions when present, else legacy_version.
    pub version: u16,
    pub retry_request: bool,
    pub encrypt_then_mac: bool,
    pub alpn: Option<String>,
}

pub(crate) fn parse_server_hello(body: &[u8]) -> Result<ServerHello, BadHandshake> {
    let mut c = Cursor(body);
    let mut hello = ServerHello {
        version: c.u16()?,
        random: c.random()?,
        ..ServerHello::default()
    };
    hello.retry_request = hello.random == HELLO_RETRY_RANDOM;
    c.vec8()?;
    hello.suite = c.u16()?;
    c.u8()?;
    extensions(&mut c, |ext, data| {
        match ext {
            EXT_SUPPORTED_VERSIONS => hello.version = Cursor(data).u16()?,
            EXT_ENCRYPT_THEN_MAC => hello.encrypt_then_mac = true,
            EXT_ALPN => hello.alpn = first_alpn(data)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(hello)
}

/// What decryption needs from TLS 1.3 EncryptedExtensions.
#[derive(Debug, Default)]
pub(crate) struct EncryptedExtensions {
    pub alpn: Option<String>,
    pub early_data: bool,
}

pub(crate) fn parse_encrypted_extensions(body: &[u8]) -> Result<EncryptedExtensions, BadHandshake> {
    let mut found = EncryptedExtensions::default();
    let mut c = Cursor(body);
    if c.0.is_empty() {
        return Err(BadHandshake);
    }
    extensions(&mut c, |ext, data| {
        match ext {
            EXT_ALPN => found.alpn = first_alpn(data)?,
            EXT_EARLY_DATA => found.early_data = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok(found)
}

impl From<BadHandshake> for TlsFailure {
    fn from(_: BadHandshake) -> TlsFailure {
        TlsFailure::Malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_across_pushes_and_skips_large_messages() {
        let mut stream = vec![11u8, 0, 0x10, 0];
        stream.extend(vec![0xaa; 0x1000]);
        stream.extend([20, 0, 0, 2, 1, 2, 24, 0, 0, 1, 0]);
        for split in 0..stream.len() {
            let mut reader = HandshakeReader::default();
            let mut seen = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader
                    .push(part, |t, body| {
                        seen.push((t, body.to_vec()));
                        Ok(())
                    })
                    .unwrap();
            }
            assert_eq!(
                seen,
                vec![(11, vec![]), (20, vec![]), (24, vec![0])],
                "split {split}"
            );
        }
    }

    #[test]
    fn huge_kept_message_is_refused() {
        let mut reader = HandshakeReader::default();
        let r = reader.push(&[1, 0xff, 0xff, 0xff], |_, _| Ok(()));
        assert_eq!(r, Err(TlsFailure::Malformed));
    }

    #[test]
    fn truncated_hellos_are_errors() {
        for len in 0..40 {
            assert!(parse_client_hello(&vec![3; len]).is_err());
            assert!(parse_server_hello(&vec![3; len]).is_err());
        }
    }
}

//! Pairing responses with requests, per connection: FIFO as HTTP/1.x requires, and aware of
//! gaps in the server's stream.
//!
//! Each request waiting for its answer remembers its Ack: how much of the server's stream the
//! client had received when it sent the request. A response cannot begin before the request it
//! answers was sent, so after a gap in the server's stream (a hole skipped, or bytes that did
//! not frame), a response that begins at or beyond the *next* waiting request's Ack cannot be
//! the answer to the first one: the gap swallowed that answer, and pairing moves on to the
//! request the response does answer. Pipelined requests sent before any answer share one Ack
//! and cannot be told apart this way; they stay FIFO.

use std::collections::VecDeque;

use shadowtap_http1::Method;

/// Requests awaiting a response per connection; older ones are forgotten.
const MAX_AWAITING: usize = 1024;

/// A request whose response has not begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Awaiting {
    pub id: [u8; 12],
    pub start_ns: i64,
    pub method: Method,
    /// The request's Ack: the server's stream position the client had seen.
    pub ack: u32,
}

/// The pairing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Pairing {
    awaiting: VecDeque<Awaiting>,
    last_ack_part: Option<u32>,
    /// The last request was a CONNECT (its 2xx answer opens a tunnel).
    pub last_request_connect: bool,
    /// Server bytes were lost since the last response began.
    server_gap: bool,
    /// A response was paired on this connection.
    answered_any: bool,
}

/// `a` is at or after `b` in sequence space.
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl Pairing {
    /// The Ack part of a new request's id: its Ack, or the previous one plus 1 when the Ack did
    /// not move (pipelined requests), so ids stay unique per connection.
    pub(crate) fn next_ack_part(&mut self, ack: u32) -> u32 {
        let ack_part = match self.last_ack_part {
            Some(last) if !at_or_after(ack, last.wrapping_add(1)) => last.wrapping_add(1),
            _ => ack,
        };
        self.last_ack_part = Some(ack_part);
        ack_part
    }

    /// A request that will wait for its response.
    pub(crate) fn push(&mut self, request: Awaiting) {
        if self.awaiting.len() >= MAX_AWAITING {
            self.awaiting.pop_front();
        }
        self.awaiting.push_back(request);
    }

    /// The method of the request just parsed.
    pub(crate) fn set_last_method(&mut self, method: Method) {
        self.last_request_connect = method == Method::Connect;
        if let Some(last) = self.awaiting.back_mut() {
            last.method = method;
        }
    }

    /// The last request turned out not to be one (it did not frame).
    pub(crate) fn cancel(&mut self, id: [u8; 12]) {
        if self.awaiting.back().is_some_and(|a| a.id == id) {
            self.awaiting.pop_back();
        }
    }

    /// Whether a response may be the connection's first answer to a waiting request (an
    /// HTTP/0.9 response has no status line; only the first answer can be told to be one).
    pub(crate) fn awaits_first_answer(&self) -> bool {
        !self.answered_any && !self.awaiting.is_empty()
    }

    /// Some of the server's bytes were lost.
    pub(crate) fn server_gap(&mut self) {
        self.server_gap = true;
    }

    /// The request a response beginning at server sequence `seq` answers, and how many
    /// waiting requests a gap had swallowed the answers of. Interim responses do not consume
    /// their request.
    pub(crate) fn answer(&mut self, interim: bool, seq: u32) -> (Option<Awaiting>, u64) {
        let mut skipped = 0;
        if std::mem::take(&mut self.server_gap) {
            while let [first, second, ..] = self.awaiting.make_contiguous() {
                let sent_after_an_answer = !at_or_after(first.ack, second.ack);
                if !(sent_after_an_answer && at_or_after(seq, second.ack)) {
                    break;
                }
                self.awaiting.pop_front();
                skipped += 1;
            }
        }
        let request = if interim {
            self.awaiting.front().copied()
        } else {
            self.awaiting.pop_front()
        };
        self.answered_any = true;
        (request, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: u8, ack: u32) -> Awaiting {
        Awaiting {
            id: [n; 12],
            start_ns: i64::from(n),
            method: Method::Other,
            ack,
        }
    }

    #[test]
    fn fifo_without_gaps() {
        let mut pairing = Pairing::default();
        pairing.push(request(1, 100));
        pairing.push(request(2, 100));
        assert_eq!(pairing.answer(true, 100).0.unwrap().id, [1; 12]);
        assert_eq!(pairing.answer(false, 100).0.unwrap().id, [1; 12]);
        assert_eq!(pairing.answer(false, 500).0.unwrap().id, [2; 12]);
        assert!(pairing.answer(false, 900).0.is_none());
    }

    #[test]
    fn a_gap_that_swallowed_an_answer_moves_pairing_on() {
        let mut pairing = Pairing::default();
        // Request 2 was sent after 300 server bytes, request 3 after 700: the answer to
        // request 2 was bytes 300..700, lost in a gap; the response at 700 answers request 3.
        pairing.push(request(2, 300));
        pairing.push(request(3, 700));
        pairing.server_gap();
        let (answered, skipped) = pairing.answer(false, 700);
        assert_eq!(answered.unwrap().id, [3; 12]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn without_a_gap_or_with_pipelined_requests_pairing_stays_fifo() {
        let mut pairing = Pairing::default();
        pairing.push(request(2, 300));
        pairing.push(request(3, 700));
        assert_eq!(pairing.answer(false, 700), (Some(request(2, 300)), 0));
        let mut pipelined = Pairing::default();
        pipelined.push(request(2, 300));
        pipelined.push(request(3, 300));
        pipelined.server_gap();
        assert_eq!(pipelined.answer(false, 900), (Some(request(2, 300)), 0));
    }

    #[test]
    fn gap_detection_survives_sequence_wraparound() {
        let mut pairing = Pairing::default();
        pairing.push(request(2, u32::MAX - 10));
        pairing.push(request(3, 20));
        pairing.server_gap();
        assert_eq!(pairing.answer(false, 25).0.unwrap().id, [3; 12]);
    }

    #[test]
    fn ack_parts_stay_unique_for_pipelined_requests() {
        let mut pairing = Pairing::default();
        assert_eq!(pairing.next_ack_part(100), 100);
        assert_eq!(pairing.next_ack_part(100), 101);
        assert_eq!(pairing.next_ack_part(100), 102);
        assert_eq!(pairing.next_ack_part(5000), 5000);
    }
}

//! The idempotent producer's numbering (§5.2.1), without I/O: which epoch and sequence
//! number each append is sent under, and what each answer means for it. Both clients
//! drive this one machine around their own HTTP and backoff, so that a rule such as
//! "never send other data under the number of an append whose answer was lost" is
//! kept once.
//!
//! ```
//! use gapless_core::producer::{Numbering, Verdict};
//! use gapless_core::wire::AppendOutcome;
//!
//! let mut numbers = Numbering::new(7);
//! assert_eq!(numbers.begin(), (7, 0));
//! // The answer was lost: the append may be stored.
//! numbers.unanswered();
//! numbers.give_up();
//! // The next append starts a new epoch: never (7, 0) again for other data, which
//! // the server would take for a duplicate and drop.
//! assert_eq!(numbers.begin(), (8, 0));
//! let stored = AppendOutcome::Accepted { next_offset: "0000000000000000_0000000000000002".parse().ok() };
//! assert_eq!(numbers.answer(&stored, true), Verdict::Stored { epoch: 8, seq: 0 });
//! ```

use crate::wire::AppendOutcome;

/// A producer's numbers and what is known of its last append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Numbering {
    epoch: u64,
    seq: u64,
    /// The append under `seq` may be stored: it was sent without a definite answer
    /// (its answer lost, or its sender gone). The next append starts a new epoch.
    unsure: bool,
    /// An attempt of the current append was sent and not answered for good.
    tried: bool,
    /// The current append only closes the stream (no data): the server answers it
    /// 204 whether or not it is a retry, so a 204 tells nothing of other writers.
    closing: bool,
    /// New epochs the current append claimed (see [`MAX_CLAIMS`]).
    claims: u8,
    /// An append of this producer was stored, or may have been (sent, its answer
    /// never had): a stale epoch from then on means that another producer with its
    /// id took over (a newer instance of it), which is not fought with a claim.
    established: bool,
    /// Fenced off after it was established, by this epoch: for good. Its appends
    /// keep their numbers instead of moving on to new epochs, and every answer but a
    /// stored one is read as this fence (a server that lost its state since is not
    /// a reason to write again).
    fenced: Option<u64>,
}

/// The most new epochs one append claims: a server that answers every epoch as
/// stale, or every start as out of step, is not asked again in a loop.
pub const MAX_CLAIMS: u8 = 3;

/// What an answer to an append means for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or stored before: a duplicate); sent under these numbers.
    Stored {
        /// Its epoch.
        epoch: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// Send it again at once, under the numbers [`Numbering::numbers`] now gives (a
    /// new epoch claimed).
    Resend,
    /// Send it again, the same, after a pause (a transient refusal).
    Retry,
    /// Another producer with this id holds a newer epoch, and this append was not
    /// stored: it fails.
    Fenced {
        /// The server's epoch.
        current: u64,
    },
    /// Fenced after an attempt whose answer was lost: it may be stored, and sending
    /// it under a new epoch could store it twice. It fails, of unknown outcome.
    FencedUnsure {
        /// The server's epoch.
        current: u64,
    },
    /// Refused for good (closed stream, sequence gap, any other status): not stored.
    Refused,
    /// Refused, but after an attempt whose answer was lost (which may have stored
    /// it): it fails, of unknown outcome.
    RefusedUnsure,
    /// Its first attempt was answered as a duplicate: another writer with this
    /// producer id already used these numbers. Not stored; it fails, and the next
    /// append moves to a new epoch.
    Taken,
}

impl Numbering {
    /// A producer starting at `epoch`, sequence 0.
    pub fn new(epoch: u64) -> Numbering {
        Numbering {
            epoch,
            seq: 0,
            unsure: false,
            tried: false,
            closing: false,
            claims: 0,
            established: false,
            fenced: None,
        }
    }

    /// Starts an append: the epoch and sequence number to send it under. After an
    /// append of unknown outcome, that is a new epoch, sequence 0: the server would
    /// take other data under the same numbers for a duplicate (and drop it), and the
    /// next number would be a gap, or refused as the start of an epoch, if that append
    /// was not stored; a new epoch is taken either way (and fences off the old one,
    /// should a request of it still be on its way). A producer fenced for good (see
    /// [`Numbering::answer`]) keeps its numbers: whatever it sends is refused.
    pub fn begin(&mut self) -> (u64, u64) {
        // An append sent and never answered may be stored: as far as a fence goes,
        // this producer has written.
        if self.unsure && self.tried {
            self.established = true;
        }
        if std::mem::take(&mut self.unsure) && self.fenced.is_none() {
            self.epoch = self.epoch.saturating_add(1);
            self.seq = 0;
        }
        self.tried = false;
        self.closing = false;
        self.claims = 0;
        // Until an answer says what became of it.
        self.unsure = true;
        self.numbers()
    }

    /// Starts an append that only closes the stream (an empty body with
    /// `Stream-Closed: true`), which the server answers 204 even the first time: as
    /// [`Numbering::begin`] otherwise.
    pub fn begin_close(&mut self) -> (u64, u64) {
        let numbers = self.begin();
        self.closing = true;
        numbers
    }

    /// The epoch that fenced this producer for good, if one did (see
    /// [`Numbering::answer`]): its drivers fail its appends at once, sending nothing
    /// (sent, one could be stored should the server forget its producers, its stream
    /// made again say).
    pub fn fenced(&self) -> Option<u64> {
        self.fenced
    }

    /// The numbers the current append is sent under.
    pub fn numbers(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }

    /// An attempt went unanswered (the request or its answer failed): it may be
    /// stored.
    pub fn unanswered(&mut self) {
        self.tried = true;
    }

    /// Moves the current append to the epoch after `above`, sequence 0, to be sent
    /// again at once.
    fn claim(&mut self, above: u64) -> Verdict {
        self.claims += 1;
        self.epoch = above.saturating_add(1);
        self.seq = 0;
        Verdict::Resend
    }

    /// The driver stops trying the current append (its retries ran out, or an
    /// answer could not be read): its outcome stays unknown, and the next append
    /// does not reuse its number. (Dropping the append without a call leaves it
    /// unsure all the same, from [`Numbering::begin`] on; but only an attempt the
    /// driver marked [`Numbering::unanswered`] counts as perhaps stored for a fence.)
    pub fn give_up(&mut self) {
        self.unsure = true;
    }

    /// What `outcome`, the server's answer to the current attempt, means.
    /// `auto_claim`: on a stale epoch before any append of this producer was stored
    /// or may have been (sent and not answered for good, a retried 5xx among them),
    /// claim one above the server's and start again; and when the server has lost
    /// this producer's numbers (a first attempt answered with a sequence gap, or
    /// refused with 400 past sequence 0), start a new epoch. At most [`MAX_CLAIMS`]
    /// times per append. Once an append was stored or may have been, a stale epoch
    /// means that a newer instance of this producer took over: this one is fenced
    /// for good (§5.2.1, zombie fencing; see [`Numbering::fenced`]). The two cannot
    /// be told apart: a producer given a fixed epoch below the server's whose first
    /// attempt went unanswered is fenced too, though it wrote nothing.
    pub fn answer(&mut self, outcome: &AppendOutcome, auto_claim: bool) -> Verdict {
        if let Some(current) = self.fenced {
            let stored = matches!(
                outcome,
                AppendOutcome::Accepted { .. } | AppendOutcome::Duplicate { .. }
            );
            if !stored {
                self.unsure = false;
                return Verdict::Fenced { current };
            }
        }
        match *outcome {
            AppendOutcome::Duplicate { .. } if !self.tried && !self.closing => Verdict::Taken,
            AppendOutcome::Accepted { .. } | AppendOutcome::Duplicate { .. } => {
                let stored = Verdict::Stored {
                    epoch: self.epoch,
                    seq: self.seq,
                };
                self.seq += 1;
                self.unsure = false;
                self.established = true;
                stored
            }
            AppendOutcome::Retry { .. } => {
                self.tried = true;
                Verdict::Retry
            }
            AppendOutcome::StaleEpoch { current } if self.tried => {
                // Still unsure, and perhaps stored before the newer epoch came: this
                // producer has written, and a newer one took over. Fenced for good.
                self.established = true;
                self.fenced = Some(current);
                Verdict::FencedUnsure { current }
            }
            AppendOutcome::StaleEpoch { current }
                if auto_claim && !self.established && self.claims < MAX_CLAIMS =>
            {
                self.claim(current.max(self.epoch))
            }
            AppendOutcome::StaleEpoch { current } => {
                self.unsure = false;
                if self.established {
                    self.fenced = Some(current);
                }
                Verdict::Fenced { current }
            }
            // The server has lost this producer's numbers (its state expired, or was
            // lost): a first attempt answered with a gap, or refused (400) as an
            // epoch's start past sequence 0, was not stored; it starts a new epoch.
            AppendOutcome::SeqGap { .. } if auto_claim && !self.tried && self.claims == 0 => {
                self.claim(self.epoch)
            }
            AppendOutcome::Rejected { status: 400 }
                if auto_claim && !self.tried && self.claims == 0 && self.seq > 0 =>
            {
                self.claim(self.epoch)
            }
            // A gap proves this append was not stored (a stored one is a duplicate).
            AppendOutcome::SeqGap { .. } => {
                self.unsure = false;
                Verdict::Refused
            }
            // Another refusal of a retry says nothing of the attempt whose answer was
            // lost.
            AppendOutcome::Closed { .. } | AppendOutcome::Rejected { .. } if self.tried => {
                self.established = true;
                Verdict::RefusedUnsure
            }
            AppendOutcome::Closed { .. } | AppendOutcome::Rejected { .. } => {
                self.unsure = false;
                Verdict::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Offset;

    fn stored() -> AppendOutcome {
        AppendOutcome::Accepted {
            next_offset: Some(Offset::parse("0000000000000000_0000000000000001").unwrap()),
        }
    }

    #[test]
    fn answered_appends_take_numbers_in_turn() {
        let mut n = Numbering::new(3);
        for seq in 0..3 {
            assert_eq!(n.begin(), (3, seq));
            assert_eq!(n.answer(&stored(), true), Verdict::Stored { epoch: 3, seq });
        }
        // A duplicate is this append stored by an attempt whose answer was lost...
        assert_eq!(n.begin(), (3, 3));
        n.unanswered();
        let duplicate = AppendOutcome::Duplicate { next_offset: None };
        assert_eq!(
            n.answer(&duplicate, true),
            Verdict::Stored { epoch: 3, seq: 3 }
        );
        // ...but answered to a first attempt, another writer's use of the numbers.
        assert_eq!(n.begin(), (3, 4));
        assert_eq!(n.answer(&duplicate, true), Verdict::Taken);
        assert_eq!(n.begin(), (4, 0), "the next append moves to a new epoch");
        // A close-only append is answered 204 the first time too.
        n.answer(&stored(), true);
        assert_eq!(n.begin_close(), (4, 1));
        assert_eq!(
            n.answer(&duplicate, true),
            Verdict::Stored { epoch: 4, seq: 1 }
        );
    }

    #[test]
    fn a_producer_the_server_forgot_starts_a_new_epoch_once_and_claims_are_capped() {
        let gap = AppendOutcome::SeqGap {
            expected: 0,
            received: Some(2),
        };
        let unknown = AppendOutcome::Rejected { status: 400 };
        for forgotten in [gap, unknown.clone()] {
            let mut n = Numbering::new(1);
            for _ in 0..2 {
                n.begin();
                n.answer(&stored(), true);
            }
            assert_eq!(n.begin(), (1, 2));
            assert_eq!(n.answer(&forgotten, true), Verdict::Resend, "{forgotten:?}");
            assert_eq!(n.numbers(), (2, 0), "a new epoch, from its start");
            // Refused again: a real refusal, not asked again.
            assert_eq!(n.answer(&forgotten, true), Verdict::Refused);
            // Without claiming, refused at once.
            let mut n = Numbering::new(1);
            n.begin();
            n.answer(&stored(), true);
            n.begin();
            assert_eq!(n.answer(&forgotten, false), Verdict::Refused);
        }
        // A 400 at sequence 0 is a refusal.
        let mut n = Numbering::new(1);
        n.begin();
        assert_eq!(n.answer(&unknown, true), Verdict::Refused);
        // A server that calls every epoch stale is not asked in a loop.
        let mut n = Numbering::new(1);
        n.begin();
        let stale = AppendOutcome::StaleEpoch { current: 9 };
        for _ in 0..MAX_CLAIMS {
            assert_eq!(n.answer(&stale, true), Verdict::Resend);
        }
        assert_eq!(n.answer(&stale, true), Verdict::Fenced { current: 9 });
    }

    #[test]
    fn a_refused_retry_leaves_the_outcome_unknown_but_a_gap_does_not() {
        let refused = AppendOutcome::Rejected { status: 401 };
        let mut n = Numbering::new(5);
        n.begin();
        assert_eq!(n.answer(&refused, true), Verdict::Refused);
        assert_eq!(n.begin(), (5, 0), "not stored: its numbers are free");
        n.unanswered();
        assert_eq!(n.answer(&refused, true), Verdict::RefusedUnsure);
        assert_eq!(
            n.begin(),
            (6, 0),
            "perhaps stored: its numbers are not reused"
        );
        n.unanswered();
        let gap = AppendOutcome::SeqGap {
            expected: 3,
            received: Some(0),
        };
        assert_eq!(n.answer(&gap, true), Verdict::Refused);
        assert_eq!(n.begin(), (6, 0));
    }

    #[test]
    fn a_fenced_first_attempt_claims_and_a_fenced_retry_does_not() {
        let fenced = AppendOutcome::StaleEpoch { current: 9 };
        let mut n = Numbering::new(3);
        n.begin();
        assert_eq!(n.answer(&fenced, true), Verdict::Resend);
        assert_eq!(n.numbers(), (10, 0));
        assert_eq!(
            n.answer(&stored(), true),
            Verdict::Stored { epoch: 10, seq: 0 }
        );
        // A fresh producer whose retry is fenced may have stored its first attempt
        // before the newer epoch came: it has written, and is fenced for good.
        let mut fresh = Numbering::new(3);
        fresh.begin();
        fresh.unanswered();
        let fenced = AppendOutcome::StaleEpoch { current: 11 };
        assert_eq!(
            fresh.answer(&fenced, true),
            Verdict::FencedUnsure { current: 11 }
        );
        assert_eq!(
            fresh.begin(),
            (3, 0),
            "its numbers kept, which the server refuses"
        );
        assert_eq!(fresh.answer(&fenced, true), Verdict::Fenced { current: 11 });
        let mut n = Numbering::new(3);
        n.begin();
        assert_eq!(n.answer(&fenced, false), Verdict::Fenced { current: 11 });
        assert_eq!(n.begin(), (3, 0), "a definite refusal keeps the number");
        // An unsure fence (the attempt may be stored) fences it for good.
        n.unanswered();
        assert_eq!(
            n.answer(&fenced, false),
            Verdict::FencedUnsure { current: 11 }
        );
        assert_eq!(n.begin(), (3, 0));
    }

    #[test]
    fn a_producer_that_stored_is_fenced_for_good_by_a_newer_instance_not_claiming_back() {
        // A stored at epoch 1000; B, a newer instance with its id, took epoch 2000.
        let mut a = Numbering::new(1000);
        a.begin();
        a.answer(&stored(), true);
        let newer = AppendOutcome::StaleEpoch { current: 2000 };
        assert_eq!(a.begin(), (1000, 1));
        assert_eq!(a.answer(&newer, true), Verdict::Fenced { current: 2000 });
        // Its later appends keep its numbers, which the server refuses as stale.
        assert_eq!(a.begin(), (1000, 1));
        assert_eq!(a.answer(&newer, true), Verdict::Fenced { current: 2000 });
        // Fenced on a retry whose answer was lost, it does not move above B either.
        let mut a = Numbering::new(1000);
        a.begin();
        a.answer(&stored(), true);
        a.begin();
        a.unanswered();
        assert_eq!(
            a.answer(&newer, true),
            Verdict::FencedUnsure { current: 2000 }
        );
        assert_eq!(a.begin(), (1000, 1));
        assert_eq!(a.answer(&newer, true), Verdict::Fenced { current: 2000 });
        // A server that lost its producer state since does not bring it back.
        for lost in [
            AppendOutcome::Rejected { status: 400 },
            AppendOutcome::SeqGap {
                expected: 0,
                received: Some(1),
            },
        ] {
            assert_eq!(a.begin(), (1000, 1));
            assert_eq!(a.answer(&lost, true), Verdict::Fenced { current: 2000 });
        }
    }

    /// A model server: the producer state it keeps, and the data it stored.
    struct Server {
        epoch: Option<u64>,
        last: u64,
        stored: Vec<u32>,
    }

    impl Server {
        fn append(&mut self, epoch: u64, seq: u64, data: u32) -> AppendOutcome {
            match self.epoch {
                Some(e) if epoch < e => return AppendOutcome::StaleEpoch { current: e },
                Some(e) if epoch == e && seq <= self.last => {
                    return AppendOutcome::Duplicate { next_offset: None }
                }
                Some(e) if epoch == e && seq != self.last + 1 => {
                    return AppendOutcome::SeqGap {
                        expected: self.last + 1,
                        received: Some(seq),
                    }
                }
                Some(e) if epoch == e => {}
                _ if seq != 0 => return AppendOutcome::Rejected { status: 400 },
                _ => {}
            }
            self.epoch = Some(epoch);
            self.last = seq;
            self.stored.push(data);
            stored()
        }
    }

    /// Sends one append of `data` to `server` under `n`'s numbers, as a driver
    /// would: `fault` 1 loses its first attempt before the server, 2 after the server
    /// stored it (0 and 3: answered); `give_up` stops after the first unanswered or
    /// retried attempt. The verdict it ended with (`None`: given up).
    fn send(
        n: &mut Numbering,
        server: &mut Server,
        data: u32,
        fault: u8,
        give_up: bool,
    ) -> Option<Verdict> {
        n.begin();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (epoch, seq) = n.numbers();
            let lost = attempts == 1 && fault > 0 && fault < 3;
            if lost && fault == 1 {
                n.unanswered();
            } else {
                let outcome = server.append(epoch, seq, data);
                if lost {
                    n.unanswered();
                } else {
                    match n.answer(&outcome, true) {
                        Verdict::Resend | Verdict::Retry => continue,
                        v => return Some(v),
                    }
                }
            }
            if give_up {
                n.give_up();
                return None;
            }
        }
    }

    proptest! {
        /// Whatever answers are lost (before or after the server stored the data) and
        /// whenever the driver gives up, nothing is stored twice, nothing acknowledged
        /// is missing, and what is stored keeps the appends' order.
        #[test]
        fn lost_answers_never_lose_nor_duplicate(
            faults in proptest::collection::vec((0u8..4, any::<bool>()), 1..60)
        ) {
            let mut server = Server { epoch: None, last: 0, stored: Vec::new() };
            let mut n = Numbering::new(1);
            let mut acked = Vec::new();
            for (data, &(fault, give_up)) in faults.iter().enumerate() {
                match send(&mut n, &mut server, data as u32, fault, give_up) {
                    Some(Verdict::Stored { .. }) => acked.push(data as u32),
                    None => {}
                    Some(v) => prop_assert!(false, "{v:?}"),
                }
            }
            let mut seen = std::collections::HashSet::new();
            prop_assert!(server.stored.iter().all(|d| seen.insert(*d)), "{:?}", server.stored);
            prop_assert!(server.stored.windows(2).all(|w| w[0] < w[1]), "{:?}", server.stored);
            prop_assert!(acked.iter().all(|d| server.stored.contains(d)));
        }

        /// A newer instance with the producer's id takes over at some append: from
        /// then on an instance that had stored something stores nothing more, however
        /// its answers are lost and whatever it retries.
        #[test]
        fn an_established_producer_fenced_by_a_newer_one_never_writes_again(
            (faults, takeover) in proptest::collection::vec((0u8..4, any::<bool>()), 1..40)
                .prop_flat_map(|faults| {
                    // At one of the appends: every case takes over.
                    let n = faults.len();
                    (Just(faults), 0..n)
                }),
        ) {
            const NEWER: u32 = 1_000_000;
            let mut server = Server { epoch: None, last: 0, stored: Vec::new() };
            let mut n = Numbering::new(1);
            // Fenced off: the server held something of it when the newer instance
            // took over (one that had stored nothing is a fresh start, which may
            // claim above it).
            let mut fenced = false;
            for (data, &(fault, give_up)) in faults.iter().enumerate() {
                if data == takeover {
                    // What the server holds, not what the producer heard: an append
                    // whose answer was lost may be stored all the same.
                    fenced = !server.stored.is_empty();
                    prop_assert_eq!(server.append(1_000, 0, NEWER), stored());
                }
                let verdict = send(&mut n, &mut server, data as u32, fault, give_up);
                let wrote = matches!(verdict, Some(Verdict::Stored { .. }));
                prop_assert!(!(fenced && wrote), "stored after the takeover");
            }
            if fenced {
                let newer = server.stored.iter().position(|&d| d == NEWER);
                prop_assert_eq!(newer, Some(server.stored.len() - 1), "{:?}", server.stored);
            }
        }
    }
}

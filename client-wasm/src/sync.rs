//! The few async pieces the package needs on the browser's single thread — a bounded
//! channel, a FIFO lock, a race of two futures and a timer — written out rather than
//! taken from `futures` and `gloo-timers`, whose general versions cost more code.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Wakes every waker in `wakers`, in the order they were registered.
fn wake_all(wakers: &RefCell<Vec<Waker>>) {
    for waker in wakers.take() {
        waker.wake();
    }
}

/// Adds `waker` to `wakers` unless it is there already: a task polled again and again
/// before it is woken (each chunk of a long response, each keep-alive) is listed once.
fn register(wakers: &RefCell<Vec<Waker>>, waker: &Waker) {
    let mut wakers = wakers.borrow_mut();
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

struct Channel<T> {
    queue: RefCell<VecDeque<T>>,
    capacity: usize,
    /// The receiver closed the channel: sends fail, what is queued is not read.
    closed: Cell<bool>,
    /// The sender is gone: reads end once the queue is empty.
    ended: Cell<bool>,
    receivers: RefCell<Vec<Waker>>,
    sender: RefCell<Vec<Waker>>,
}

/// A bounded single-producer channel (`futures::channel::mpsc::channel` as the driver
/// uses it).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Channel {
        queue: RefCell::new(VecDeque::new()),
        capacity,
        closed: Cell::new(false),
        ended: Cell::new(false),
        receivers: RefCell::new(Vec::new()),
        sender: RefCell::new(Vec::new()),
    });
    (Sender(Rc::clone(&shared)), Receiver(shared))
}

/// The sending half; dropping it ends the channel.
pub struct Sender<T>(Rc<Channel<T>>);

impl<T> Sender<T> {
    /// Queues `item`, waiting while the channel is full; `Err` once the receiver has
    /// closed it.
    pub async fn send(&mut self, item: T) -> Result<(), ()> {
        let channel = &*self.0;
        poll_fn(|cx| {
            if channel.closed.get() {
                Poll::Ready(Err(()))
            } else if channel.queue.borrow().len() < channel.capacity {
                Poll::Ready(Ok(()))
            } else {
                register(&channel.sender, cx.waker());
                Poll::Pending
            }
        })
        .await?;
        channel.queue.borrow_mut().push_back(item);
        wake_all(&channel.receivers);
        Ok(())
    }
}

impl<T> Sender<T> {
    /// Whether the receiver has closed the channel.
    pub fn is_closed(&self) -> bool {
        self.0.closed.get()
    }

    /// Whether the receiver has closed the channel; if not, `cx` is woken when it
    /// does (or, spuriously, when an item is taken).
    pub fn poll_closed(&self, cx: &mut std::task::Context<'_>) -> bool {
        let closed = self.0.closed.get();
        if !closed {
            register(&self.0.sender, cx.waker());
        }
        closed
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.ended.set(true);
        wake_all(&self.0.receivers);
    }
}

/// The receiving half.
pub struct Receiver<T>(Rc<Channel<T>>);

impl<T> Receiver<T> {
    /// The next item, or `None` once the sender is gone (or the channel closed) and the
    /// queue is empty.
    pub async fn next(&self) -> Option<T> {
        let channel = &*self.0;
        poll_fn(|cx| {
            // Closed: what is still queued is not read.
            if channel.closed.get() {
                return Poll::Ready(None);
            }
            if let Some(item) = channel.queue.borrow_mut().pop_front() {
                wake_all(&channel.sender);
                return Poll::Ready(Some(item));
            }
            if channel.ended.get() {
                return Poll::Ready(None);
            }
            register(&channel.receivers, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Closes the channel: the sender's next send fails, and reads end at once (what
    /// is queued is not read).
    pub fn close(&self) {
        self.0.closed.set(true);
        wake_all(&self.0.sender);
        wake_all(&self.0.receivers);
    }
}

/// An async lock that is granted in the order it was asked for (what
/// `futures::lock::Mutex` gave): each holder runs alone, across its awaits.
#[derive(Default)]
pub struct FifoLock {
    next: Cell<u64>,
    serving: Cell<u64>,
    /// Tickets whose waiters gave up (were dropped) before their turn.
    abandoned: RefCell<Vec<u64>>,
    waiting: RefCell<Vec<Waker>>,
}

/// Holds a [`FifoLock`] until dropped.
pub struct Turn<'a> {
    lock: &'a FifoLock,
    ticket: u64,
    granted: bool,
}

impl FifoLock {
    /// Waits for this caller's turn.
    pub async fn lock(&self) -> Turn<'_> {
        let ticket = self.next.get();
        self.next.set(ticket + 1);
        // Dropped while still waiting, it gives its place up.
        let mut turn = Turn {
            lock: self,
            ticket,
            granted: false,
        };
        poll_fn(|cx| {
            if self.serving.get() == ticket {
                Poll::Ready(())
            } else {
                register(&self.waiting, cx.waker());
                Poll::Pending
            }
        })
        .await;
        turn.granted = true;
        turn
    }

    /// Serves the next ticket that is still wanted.
    fn advance(&self) {
        let mut next = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while let Some(i) = abandoned.iter().position(|t| *t == next) {
            abandoned.swap_remove(i);
            next += 1;
        }
        drop(abandoned);
        self.serving.set(next);
        wake_all(&self.waiting);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.granted || self.lock.serving.get() == self.ticket {
            self.lock.advance();
        } else {
            self.lock.abandoned.borrow_mut().push(self.ticket);
        }
    }
}

/// Which of two futures finished first.
pub enum First<A, B> {
    /// The first one, with its output.
    Left(A),
    /// The second one, with its output.
    Right(B),
}

/// Polls both futures until one is ready (the first one wins a tie); the other one is
/// left as it is, so a caller holding it can go on awaiting it.
pub async fn race<A, B>(mut a: A, mut b: B) -> First<A::Output, B::Output>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    poll_fn(|cx| {
        if let Poll::Ready(out) = Pin::new(&mut a).poll(cx) {
            Poll::Ready(First::Left(out))
        } else if let Poll::Ready(out) = Pin::new(&mut b).poll(cx) {
            Poll::Ready(First::Right(out))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// What a timer's callback and its future share: whether it fired, and whom to wake.
#[derive(Default)]
struct Alarm {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A future that is ready after some milliseconds; dropping it clears the timer and
/// lets go of its callback. (A promise's future would keep its callbacks for ever
/// once the timer was cleared: two closures leaked by every timer that lost a race,
/// one per chunk read.)
pub struct Sleep {
    id: JsValue,
    alarm: Rc<Alarm>,
    _callback: Closure<dyn FnMut()>,
}

impl Sleep {
    /// Ready after `ms` milliseconds, at most `i32::MAX` (about 24.8 days): `setTimeout`
    /// runs longer delays at once, so `u32::MAX` means "not in this session".
    pub fn new(ms: u32) -> Sleep {
        let ms = ms.min(i32::MAX as u32) as i32;
        let alarm = Rc::new(Alarm::default());
        let rung = Rc::clone(&alarm);
        let callback = Closure::<dyn FnMut()>::new(move || {
            rung.fired.set(true);
            if let Some(waker) = rung.waker.take() {
                waker.wake();
            }
        });
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms);
        Sleep {
            id,
            alarm,
            _callback: callback,
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.alarm.fired.get() {
            return Poll::Ready(());
        }
        *self.alarm.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::future::{join, pending, ready};
    use futures::FutureExt;

    #[test]
    fn the_channel_keeps_order_waits_when_full_and_ends() {
        let (mut tx, rx) = channel(2);
        let sending = async move {
            for i in 0..5 {
                tx.send(i).await.unwrap();
            }
        };
        let receiving = async {
            let mut got = Vec::new();
            while let Some(i) = rx.next().await {
                got.push(i);
            }
            got
        };
        let ((), got) = block_on(join(sending, receiving));
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_closed_channel_refuses_sends_and_gives_nothing_more() {
        let (mut tx, rx) = channel(4);
        block_on(async {
            tx.send(1).await.unwrap();
            rx.close();
            assert!(tx.send(2).await.is_err());
            // What it held is not read after the close.
            assert_eq!(rx.next().await, None);
        });
    }

    #[test]
    fn the_lock_is_granted_in_order_and_skips_waiters_that_gave_up() {
        let lock = FifoLock::default();
        let first = lock.lock().now_or_never().expect("free at first");
        let mut second = Box::pin(lock.lock());
        let third = lock.lock();
        assert!((&mut second).now_or_never().is_none());
        drop(second);
        drop(first);
        assert!(third.now_or_never().is_some(), "the third caller is next");
        assert!(lock.lock().now_or_never().is_some());
    }

    #[test]
    fn a_task_polled_again_before_it_is_woken_is_listed_once() {
        let (tx, _rx) = channel::<u8>(1);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        for _ in 0..1_000 {
            assert!(!tx.poll_closed(&mut cx));
        }
        assert_eq!(tx.0.sender.borrow().len(), 1);
    }

    #[test]
    fn race_returns_the_first_ready() {
        assert!(matches!(block_on(race(ready(1), ready(2))), First::Left(1)));
        assert!(matches!(
            block_on(race(pending::<u8>(), ready(2))),
            First::Right(2)
        ));
    }
}

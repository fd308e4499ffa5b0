//! The scheduler: which image a worker builds next, as plain data. It owns each image's
//! [`State`] and the ready queue; the executor tells it what started, succeeded and failed and
//! asks it what to start next. No threads, channels, I/O or clock: tests drive it step by step.
//!
//! Deep: an image waits for the parent it is built on when the plan builds that parent too.
//! Shallow: nothing waits. The ready queue hands out the image with the longest chain of builds
//! below it first, then the first in topological order. Without keep-going, the first failure
//! starts nothing more; the running builds finish. With it, only the images below a failure
//! are skipped. An interrupt starts nothing more.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::graph::{ImageId, ImageMap};
use crate::model::Strategy;

/// Where an image stands in the run. An image the plan builds goes `Waiting` (deep only) ->
/// `Ready` -> `Running` -> `Succeeded` or `Failed`, or from `Waiting` or `Ready` to `Skipped`;
/// a run that stops leaves some `Waiting` or `Ready` for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// The plan does not build it (fresh, or not selected). Never changes.
    Unwanted,
    /// To build, deep only: the parent it is built on is to build too and has not succeeded
    /// yet. Not in the ready queue; `Ready` once the parent succeeds, `Skipped` if it fails.
    Waiting,
    /// To build, and nothing it is built on is left to build: in the ready queue, exactly once,
    /// until a worker is free and the run is not stopped.
    Ready,
    /// Handed out by [`Scheduler::start`] and counted as running until its worker reports.
    Running,
    /// Built and recorded by its worker (or found recorded by another run). Its children that
    /// were waiting for it are `Ready`.
    Succeeded,
    /// Its build failed: no record. Deep: nothing below it is `Waiting` or `Ready` any more,
    /// every such image is `Skipped`.
    Failed,
    /// Never started and never will: an image it is built on failed.
    Skipped(Skip),
}

/// Why an image the plan builds was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// An image it is built on failed (deep).
    Failed(ImageId),
    /// The run was interrupted before it started, or the image it is built on failed after
    /// the interrupt.
    Interrupted,
    /// The run stopped before starting it: after the named first failure (without
    /// keep-going); with none, the executor ended the run before the scheduler was done.
    NotStarted(Option<ImageId>),
}

/// The per-image states and the ready queue of one run.
#[derive(Debug)]
pub(super) struct Scheduler {
    state: ImageMap<State>,
    /// Deep: the images built on each one. Shallow: none.
    children: ImageMap<Vec<ImageId>>,
    /// The length of the longest chain of builds below each image: the queue's first key.
    height: ImageMap<usize>,
    /// Exactly the `Ready` images, the one to start first on top.
    ready: BinaryHeap<(usize, Reverse<ImageId>)>,
    /// At most this many `Running` at once (`-j`, at least 1).
    jobs: usize,
    /// How many are `Running`.
    running: usize,
    keep_going: bool,
    /// Start nothing more: after a failure without keep-going, or an interrupt.
    stopped: bool,
    interrupted: bool,
    first_failure: Option<ImageId>,
}

impl Scheduler {
    /// A run over images with these parents, building those `build` marks, with `jobs`
    /// workers.
    pub(super) fn new(
        parent: &ImageMap<Option<ImageId>>,
        build: &ImageMap<bool>,
        strategy: Strategy,
        jobs: usize,
        keep_going: bool,
    ) -> Scheduler {
        let deep = strategy == Strategy::Deep;
        let mut children = ImageMap::filled(parent.len(), Vec::new());
        if deep {
            for (i, p) in parent.iter() {
                if let Some(p) = *p {
                    children[p].push(i);
                }
            }
        }
        // Children come after their parents in topological order: walk up from the end.
        let mut height = ImageMap::filled(parent.len(), 0);
        for i in parent.ids().rev() {
            if let Some(p) = parent[i].filter(|&p| deep && build[i] && build[p]) {
                height[p] = height[p].max(height[i] + 1);
            }
        }
        let mut ready = BinaryHeap::new();
        let state = parent
            .iter()
            .map(|(i, p)| {
                if !build[i] {
                    State::Unwanted
                } else if deep && p.is_some_and(|p| build[p]) {
                    State::Waiting
                } else {
                    ready.push((height[i], Reverse(i)));
                    State::Ready
                }
            })
            .collect();
        Scheduler {
            state,
            children,
            height,
            ready,
            jobs: jobs.max(1),
            running: 0,
            keep_going,
            stopped: false,
            interrupted: false,
            first_failure: None,
        }
    }

    /// The next image to build, now `Running`; `None` when every worker is busy, nothing is
    /// ready, or the run is stopped.
    pub(super) fn start(&mut self) -> Option<ImageId> {
        if self.stopped || self.running >= self.jobs {
            return None;
        }
        let (_, Reverse(id)) = self.ready.pop()?;
        self.state[id] = State::Running;
        self.running += 1;
        Some(id)
    }

    /// A running image was built and recorded: the images waiting for it are ready.
    pub(super) fn succeeded(&mut self, id: ImageId) {
        self.finish(id, State::Succeeded);
        for &c in &self.children[id] {
            if self.state[c] == State::Waiting {
                self.state[c] = State::Ready;
                self.ready.push((self.height[c], Reverse(c)));
            }
        }
    }

    /// A running image failed. Returns the images this skips (those below it not yet
    /// started), in topological order.
    pub(super) fn failed(&mut self, id: ImageId) -> Vec<ImageId> {
        self.finish(id, State::Failed);
        self.first_failure.get_or_insert(id);
        if !self.keep_going {
            self.stopped = true;
        }
        let skip = match self.interrupted {
            true => Skip::Interrupted,
            false => Skip::Failed(id),
        };
        // Each image has one parent: the walk meets every image below `id` once.
        let mut skipped = Vec::new();
        let mut below = self.children[id].clone();
        while let Some(d) = below.pop() {
            if matches!(self.state[d], State::Waiting | State::Ready) {
                self.state[d] = State::Skipped(skip);
                skipped.push(d);
            }
            below.extend(&self.children[d]);
        }
        let state = &self.state;
        self.ready
            .retain(|(_, Reverse(r))| state[*r] == State::Ready);
        skipped.sort();
        skipped
    }

    /// The run was interrupted: nothing more starts.
    pub(super) fn interrupt(&mut self) {
        self.interrupted = true;
        self.stopped = true;
    }

    fn finish(&mut self, id: ImageId, to: State) {
        debug_assert_eq!(
            self.state[id],
            State::Running,
            "only a running image finishes"
        );
        self.state[id] = to;
        self.running -= 1;
    }

    /// Nothing is running and nothing more will start: the run is over.
    pub(super) fn done(&self) -> bool {
        self.running == 0 && (self.stopped || self.ready.is_empty())
    }

    #[cfg(test)]
    pub(super) fn state(&self, id: ImageId) -> State {
        self.state[id]
    }

    pub(super) fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Why an image the plan builds was not built, once the run is over: `None` for an image
    /// that ran, or that the plan does not build.
    pub(super) fn not_built(&self, id: ImageId) -> Option<Skip> {
        match self.state[id] {
            State::Skipped(skip) => Some(skip),
            State::Waiting | State::Ready if self.interrupted => Some(Skip::Interrupted),
            State::Waiting | State::Ready => Some(Skip::NotStarted(self.first_failure)),
            State::Unwanted | State::Running | State::Succeeded | State::Failed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> ImageId {
        ImageId::new(i)
    }

    /// `parents[i]` is image `i`'s parent; every image is to build unless `fresh` names it.
    fn scheduler(
        parents: &[Option<usize>],
        fresh: &[usize],
        strategy: Strategy,
        jobs: usize,
        keep_going: bool,
    ) -> Scheduler {
        let parent: ImageMap<_> = parents.iter().map(|p| p.map(id)).collect();
        let build = parent.ids().map(|i| !fresh.contains(&i.index())).collect();
        Scheduler::new(&parent, &build, strategy, jobs, keep_going)
    }

    /// Starts everything that can start, as the executor does before it waits.
    fn start_all(s: &mut Scheduler) -> Vec<usize> {
        std::iter::from_fn(|| s.start())
            .map(ImageId::index)
            .collect()
    }

    // 0 base -> 1 app -> 2 svc, 0 base -> 3 web, 4 tool (alone).
    const TREE: [Option<usize>; 5] = [None, Some(0), Some(1), Some(0), None];

    #[test]
    fn deep_starts_an_image_once_its_parent_succeeded() {
        let mut s = scheduler(&TREE, &[], Strategy::Deep, 8, false);
        assert_eq!(s.state(id(1)), State::Waiting);
        // The longest chain of builds first: base has two below it, tool none.
        assert_eq!(start_all(&mut s), [0, 4]);
        s.succeeded(id(4));
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        s.succeeded(id(0));
        assert_eq!(s.state(id(1)), State::Ready);
        assert_eq!(start_all(&mut s), [1, 3]);
        s.succeeded(id(3));
        s.succeeded(id(1));
        assert_eq!(start_all(&mut s), [2]);
        assert!(!s.done());
        s.succeeded(id(2));
        assert!(s.done());
        assert!((0..5).all(|i| s.not_built(id(i)).is_none()));
    }

    #[test]
    fn shallow_starts_everything_at_once_up_to_the_jobs() {
        let mut s = scheduler(&TREE, &[], Strategy::Shallow, 3, false);
        assert_eq!(start_all(&mut s), [0, 1, 2]);
        s.succeeded(id(1));
        assert_eq!(start_all(&mut s), [3]);
        for i in [0, 2, 3] {
            s.succeeded(id(i));
        }
        assert_eq!(start_all(&mut s), [4]);
        s.succeeded(id(4));
        assert!(s.done());
    }

    #[test]
    fn an_image_on_a_fresh_parent_does_not_wait() {
        let mut s = scheduler(&TREE, &[0, 4], Strategy::Deep, 8, false);
        assert_eq!(s.state(id(0)), State::Unwanted);
        // app heads a chain of two builds, web none.
        assert_eq!(start_all(&mut s), [1, 3]);
        s.succeeded(id(1));
        assert_eq!(start_all(&mut s), [2]);
        s.succeeded(id(2));
        s.succeeded(id(3));
        assert!(s.done());
        assert_eq!(s.not_built(id(0)), None);
    }

    #[test]
    fn a_failure_without_keep_going_starts_nothing_more() {
        let mut s = scheduler(&TREE, &[], Strategy::Deep, 8, false);
        assert_eq!(start_all(&mut s), [0, 4]);
        assert_eq!(s.failed(id(4)), [] as [ImageId; 0]);
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        // The running build finishes and is recorded; what it readies does not start.
        assert!(!s.done());
        s.succeeded(id(0));
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        assert!(s.done());
        assert_eq!(s.not_built(id(1)), Some(Skip::NotStarted(Some(id(4)))));
        assert_eq!(s.not_built(id(2)), Some(Skip::NotStarted(Some(id(4)))));
        assert_eq!(s.not_built(id(0)), None);
    }

    #[test]
    fn a_failure_skips_the_images_below_it() {
        let mut s = scheduler(&TREE, &[], Strategy::Deep, 8, false);
        assert_eq!(start_all(&mut s), [0, 4]);
        assert_eq!(s.failed(id(0)), [id(1), id(2), id(3)]);
        assert_eq!(s.state(id(2)), State::Skipped(Skip::Failed(id(0))));
        s.succeeded(id(4));
        assert!(s.done());
        assert_eq!(s.not_built(id(3)), Some(Skip::Failed(id(0))));
    }

    #[test]
    fn keep_going_builds_everything_not_below_a_failure() {
        let mut s = scheduler(&TREE, &[], Strategy::Deep, 8, true);
        assert_eq!(start_all(&mut s), [0, 4]);
        s.succeeded(id(0));
        assert_eq!(start_all(&mut s), [1, 3]);
        assert_eq!(s.failed(id(1)), [id(2)]);
        assert_eq!(s.failed(id(4)), [] as [ImageId; 0]);
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        assert!(!s.done());
        s.succeeded(id(3));
        assert!(s.done());
        assert_eq!(s.not_built(id(2)), Some(Skip::Failed(id(1))));
        assert_eq!(s.state(id(3)), State::Succeeded);
    }

    #[test]
    fn shallow_failures_skip_nothing() {
        let mut s = scheduler(&TREE, &[], Strategy::Shallow, 8, true);
        assert_eq!(start_all(&mut s), [0, 1, 2, 3, 4]);
        assert_eq!(s.failed(id(0)), [] as [ImageId; 0]);
        for i in 1..5 {
            s.succeeded(id(i));
        }
        assert!(s.done());
    }

    #[test]
    fn an_interrupt_starts_nothing_and_skips_below_later_failures() {
        let mut s = scheduler(&TREE, &[], Strategy::Deep, 1, true);
        assert_eq!(start_all(&mut s), [0]);
        s.interrupt();
        assert!(s.interrupted());
        // The interrupted build fails; what stands on it is skipped as interrupted.
        assert_eq!(s.failed(id(0)), [id(1), id(2), id(3)]);
        assert_eq!(s.state(id(1)), State::Skipped(Skip::Interrupted));
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        assert!(s.done());
        // Never started: interrupted, whatever failed first.
        assert_eq!(s.not_built(id(4)), Some(Skip::Interrupted));
    }

    #[test]
    fn a_ready_image_below_a_failure_leaves_the_queue() {
        // 0 -> 1 (fresh) -> 2: 2 does not wait for 0, but is below it.
        let mut s = scheduler(&[None, Some(0), Some(1)], &[1], Strategy::Deep, 1, true);
        assert_eq!(start_all(&mut s), [0]);
        assert_eq!(s.state(id(2)), State::Ready);
        assert_eq!(s.failed(id(0)), [id(2)]);
        assert_eq!(start_all(&mut s), [] as [usize; 0]);
        assert!(s.done());
    }
}

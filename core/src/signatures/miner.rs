//! The streaming template miner.
//!
//! # Algorithm
//!
//! A Drain-style fixed-depth search with three changes that matter for logs nobody
//! configured:
//!
//! 1. **Masking first** ([`super::mask`]): most variables are recognised by shape, so
//!    most lines of one template are byte-identical after masking.
//! 2. **Exact-match cache**: the masked text is looked up in a hash map of masked texts
//!    seen before. A hit returns the cluster immediately; that is the common path and
//!    what makes the miner fast (one masking pass, one hash, one probe). In front of
//!    masking, two memos answer most lines without masking them: a message repeated
//!    byte for byte (the recent-message memo, [`TemplateMiner::mine`]), and a message
//!    that differs from a recent one only in the values of its numbers (the skeleton
//!    memo, `skeleton.rs`). Neither changes a result.
//! 3. **Similarity over informative positions only**: on a miss, the line's tokens are
//!    compared with the templates of the clusters that have the same token count and the
//!    same first token (Drain's tree of depth 2, kept as a hash map). Positions that are
//!    masked in both the line and the template carry no information and are left out.
//!    A template position that is `<*>` never counts as agreeing with a concrete token:
//!    what a cluster has already given up cannot vouch for the next line. (Drain and
//!    drain3 count an existing `<*>` as a match, so every merge makes the next one
//!    easier and a cluster "snowballs" over distinct messages; here the positions that
//!    disagree with the creating line's constants are bounded by `1 - similarity`
//!    for the cluster's whole life.) The line joins the most similar cluster if the
//!    share of agreeing positions reaches [`MinerConfig::similarity`], and the
//!    positions that disagree become `<*>`; otherwise it starts a new cluster. Only clusters whose tokens have the same
//!    *shapes* (punctuation skeleton, see `mask::shape_hash`) are candidates, so
//!    `by (uid=0)` and `by LOGIN(uid=0)` never merge while `user alice` and `user 0`
//!    may.
//!
//! Routing on the first token keeps `cupsd startup succeeded` and `klogd startup
//! succeeded` apart (as Drain does) while `Invalid user alice from <*>` and `Invalid user
//! bob from <*>` merge. A first token that is only a masked value routes to a shared
//! wildcard branch.
//!
//! # Ids and their stability
//!
//! A cluster's [`SignatureId`] is the FNV-1a 64 hash of the masked text of the line that
//! created it, fixed for the cluster's life even when its template later generalises.
//! Hence:
//!
//! - the same input in the same order gives the same ids on every run and platform (no
//!   randomness, no clock, no pointer-dependent iteration);
//! - a line's id does not depend on earlier lines of *other* templates, except when those
//!   lines were similar enough to compete for the same cluster, or when the template cap
//!   evicted its cluster;
//! - a template whose first line carries no word-like variable (the usual case after
//!   masking) gets the same id whatever order its lines arrive in, in any stream.
//!
//! # Memory
//!
//! At most [`MinerConfig::max_templates`] clusters are kept (default 50,000, roughly
//! 300 bytes plus the template text each). When a new cluster would exceed the cap, the
//! least recently used tenth is evicted at once (so eviction costs O(log n) amortised per
//! new cluster). An evicted cluster is *retired* (`retired.rs`), not forgotten: a later
//! line that matches it brings it back with its id, template and first sighting, so a
//! template that went quiet is not a new signature when it returns. At most
//! `max_templates` clusters are retired (the oldest retirement is forgotten first), and
//! `max_branch` per branch. One branch holds at most [`MinerConfig::max_branch`] live
//! clusters, retiring its least recently used one, which bounds the similarity search.
//! The exact-match cache holds at most twice `max_templates` texts and is emptied when
//! full; the recent-message memo has 2,048 slots (1,024 sets of two) of at most 512
//! bytes, the skeleton memo 512 (64 sets of eight) of at most 512 bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mask::{mask_message, shape_hash, token_spans, WILDCARD};
use super::memo::Memo;
use super::retired::Retired;
use super::skeleton::{self, SkeletonMemo};
use crate::hash::{fnv1a, fnv1a_from, sampled_hash, FnvMap};
use crate::samples::LogLevel;
use crate::time::Timestamp;

/// A stable signature id: a 64-bit hash shown as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignatureId(pub u64);

impl fmt::Display for SignatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for SignatureId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(format!(
                "signature id must be 16 hex digits, got {} characters in {s:?}",
                s.len()
            ));
        }
        u64::from_str_radix(s, 16)
            .map(SignatureId)
            .map_err(|_| format!("signature id must be 16 hex digits, got {s:?}"))
    }
}

impl Serialize for SignatureId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignatureId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Settings of the [`TemplateMiner`]. The defaults need no tuning per system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MinerConfig {
    /// Most clusters kept; least recently used ones are evicted beyond it.
    pub max_templates: usize,
    /// Share of informative token positions that must agree for a line to join a
    /// cluster (0 to 1).
    pub similarity: f64,
    /// Most clusters compared on one branch (same length and first token).
    pub max_branch: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            max_templates: 50_000,
            similarity: 0.7,
            max_branch: 128,
        }
    }
}

/// The signature and template a message was assigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// Stable id of the template.
    pub signature: SignatureId,
    /// The template with `<*>` for variables, as it stands after this message.
    pub template: String,
}

/// Like [`Match`], borrowing the template from the miner (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchRef<'a> {
    /// Stable id of the template.
    pub signature: SignatureId,
    /// The template with `<*>` for variables, as it stands after this message.
    pub template: &'a str,
}

/// A template as the miner knows it, for persisting and restoring: what a store keeps
/// so that a signature keeps its id, and "new" keeps meaning "never seen", across
/// restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// Stable id of the template.
    pub signature: SignatureId,
    /// The level that is part of the signature (`None` for messages mined without one).
    pub level: Option<LogLevel>,
    /// The template with `<*>` for variables.
    pub template: String,
    /// Earliest event time of a message of this template, when the messages had one.
    pub first_seen: Option<Timestamp>,
}

/// Sets of the recent-message memo (a power of two); each holds [`RECENT_WAYS`] slots.
const RECENT_SETS: usize = 1024;
/// Slots per set of the recent-message memo.
const RECENT_WAYS: usize = 2;
/// Longest message the memo keeps; longer ones are masked every time (they are rare, and
/// the bound keeps the memo's memory fixed: at most `RECENT_SETS` × `RECENT_WAYS` × this
/// many bytes).
const RECENT_MAX_BYTES: usize = 512;

#[derive(Debug)]
pub(super) struct Cluster {
    pub(super) id: SignatureId,
    level: Option<LogLevel>,
    /// Hash of each template token; `wildcard` for `<*>`.
    tokens: Vec<u64>,
    /// Shape of each template token ([`shape_hash`]); fixed for the cluster's life.
    shapes: Vec<u64>,
    /// Whether each template token is a name ([`is_name`]).
    names: Vec<bool>,
    /// Text of each template token (kept to rebuild `template`).
    texts: Vec<Box<str>>,
    template: String,
    pub(super) branch: u64,
    last_used: u64,
    count: u64,
    first_seen: Option<i64>,
    /// Listed in `changed` since the last [`TemplateMiner::take_changed`].
    dirty: bool,
}

/// Streaming log template miner; see the module docs for the algorithm and guarantees.
#[derive(Debug)]
pub struct TemplateMiner {
    config: MinerConfig,
    slots: Vec<Option<Cluster>>,
    /// Bumped when a slot is freed, so cache entries for the old cluster go stale.
    generations: Vec<u32>,
    free: Vec<u32>,
    live: usize,
    branches: FnvMap<u64, Vec<u32>>,
    by_id: FnvMap<u64, u32>,
    /// Exact-match cache, keyed by the level byte (if any) followed by the masked text.
    cache: FnvMap<Box<str>, (u32, u32)>,
    /// Recent-message memo, in front of masking; see [`TemplateMiner::mine`].
    recent: Memo<RECENT_SETS, RECENT_WAYS>,
    /// Memo of recent messages' digit skeletons, after the recent-message memo and in
    /// front of masking (`skeleton.rs`).
    skeletons: SkeletonMemo,
    /// Evicted clusters, so that a template keeps its id after eviction.
    retired: Retired,
    tick: u64,
    wildcard: u64,
    /// Level prefix (0 or 1 byte) then the masked text.
    masked: String,
    /// Length of the level prefix in `masked`.
    prefix: usize,
    spans: Vec<(usize, usize)>,
    scratch: String,
    hashes: Vec<u64>,
    shapes: Vec<u64>,
    names: Vec<bool>,
    /// Ids of templates created or generalised since the last `take_changed`, when
    /// tracking is on.
    changed: Option<Vec<SignatureId>>,
}

impl Default for TemplateMiner {
    fn default() -> Self {
        TemplateMiner::new(MinerConfig::default())
    }
}

/// The byte that stands for a level at the start of the cache key and of the text
/// hashed into a leveled template's id. Control bytes never start a masked message
/// (masking drops leading whitespace and a message has no reason to start with one).
fn level_byte(level: LogLevel) -> char {
    match level {
        LogLevel::Debug => '\u{1}',
        LogLevel::Info => '\u{2}',
        LogLevel::Warn => '\u{3}',
        LogLevel::Error => '\u{4}',
        LogLevel::Fatal => '\u{5}',
    }
}

impl TemplateMiner {
    /// A miner with `config`; a cap or branch size of 0 is taken as 1 and the
    /// similarity is clamped to 0..=1.
    pub fn new(mut config: MinerConfig) -> Self {
        config.max_templates = config.max_templates.max(1);
        config.max_branch = config.max_branch.max(1);
        config.similarity = if config.similarity.is_nan() {
            MinerConfig::default().similarity
        } else {
            config.similarity.clamp(0.0, 1.0)
        };
        TemplateMiner {
            retired: Retired::new(config.max_templates, config.max_branch),
            config,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            live: 0,
            branches: FnvMap::default(),
            by_id: FnvMap::default(),
            cache: FnvMap::default(),
            recent: Memo::default(),
            skeletons: SkeletonMemo::default(),
            tick: 0,
            wildcard: fnv1a(WILDCARD.as_bytes()),
            masked: String::new(),
            prefix: 0,
            spans: Vec::new(),
            scratch: String::new(),
            hashes: Vec::new(),
            shapes: Vec::new(),
            names: Vec::new(),
            changed: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Number of templates currently kept.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No template yet.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A live cluster, or a retired one (evicted, still remembered).
    fn cluster(&self, id: SignatureId) -> Option<&Cluster> {
        match self.by_id.get(&id.0) {
            Some(&slot) => self.slots[slot as usize].as_ref(),
            None => self.retired.get(id.0),
        }
    }

    /// Number of evicted templates still remembered (see the module docs, "Memory").
    pub fn retired_len(&self) -> usize {
        self.retired.len()
    }

    /// The current template of a signature, if it is still kept (live, or evicted and
    /// still remembered).
    pub fn template(&self, id: SignatureId) -> Option<&str> {
        self.cluster(id).map(|c| c.template.as_str())
    }

    /// How many messages a kept signature has matched.
    pub fn count(&self, id: SignatureId) -> Option<u64> {
        self.cluster(id).map(|c| c.count)
    }

    /// Earliest event time of a kept signature, when its messages were mined with
    /// [`add_event`](Self::add_event) or it was restored with one.
    pub fn first_seen(&self, id: SignatureId) -> Option<Timestamp> {
        self.cluster(id).and_then(|c| c.first_seen).map(Timestamp)
    }

    /// The kept template of `id` as a [`TemplateRecord`].
    pub fn record(&self, id: SignatureId) -> Option<TemplateRecord> {
        self.cluster(id).map(|c| TemplateRecord {
            signature: c.id,
            level: c.level,
            template: c.template.clone(),
            first_seen: c.first_seen.map(Timestamp),
        })
    }

    /// Starts (or keeps) recording which templates are created or generalised, for
    /// [`take_changed`](Self::take_changed).
    pub fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// The templates created or generalised since the last call (each once), when
    /// [`track_changes`](Self::track_changes) is on; what a store should write.
    pub fn take_changed(&mut self) -> Vec<TemplateRecord> {
        let Some(ids) = self.changed.as_mut() else {
            return Vec::new();
        };
        let ids = std::mem::take(ids);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // A template evicted since it changed is still reported, from the retired
            // list: a store must not miss a template because it went quiet.
            let kept = match self.by_id.get(&id.0) {
                Some(&slot) => self.slots[slot as usize].as_mut(),
                None => self.retired.get_mut(id.0),
            };
            if let Some(c) = kept {
                c.dirty = false;
                out.push(TemplateRecord {
                    signature: c.id,
                    level: c.level,
                    template: c.template.clone(),
                    first_seen: c.first_seen.map(Timestamp),
                });
            }
        }
        out
    }

    fn mark_changed(&mut self, slot: u32) {
        if let Some(changed) = self.changed.as_mut() {
            if let Some(c) = self.slots[slot as usize].as_mut() {
                if !c.dirty {
                    c.dirty = true;
                    changed.push(c.id);
                }
            }
        }
    }

    /// Assigns `message` to a template, learning from it; returns an owned [`Match`].
    pub fn add(&mut self, message: &str) -> Match {
        let m = self.add_ref(message);
        Match {
            signature: m.signature,
            template: m.template.to_string(),
        }
    }

    /// Assigns `message` (with no known level) to a template, learning from it, without
    /// allocating in the common case (a message whose masked text was seen before).
    pub fn add_ref(&mut self, message: &str) -> MatchRef<'_> {
        self.mine(None, message, None)
    }

    /// Like [`add_ref`](Self::add_ref) for a message logged at `level`: the level is part
    /// of the signature, so `ERROR payment failed` and `INFO payment failed` are two
    /// signatures (a message that moves from info to error after a deploy is news).
    pub fn add_leveled(&mut self, level: Option<LogLevel>, message: &str) -> MatchRef<'_> {
        self.mine(level, message, None)
    }

    /// Like [`add_leveled`](Self::add_leveled) for an event at time `at`, which the
    /// template remembers as its first sighting when it is the earliest.
    pub fn add_event(&mut self, level: LogLevel, message: &str, at: Timestamp) -> MatchRef<'_> {
        self.mine(Some(level), message, Some(at.0))
    }

    fn mine(&mut self, level: Option<LogLevel>, message: &str, at: Option<i64>) -> MatchRef<'_> {
        self.tick += 1;
        // The recent-message memo. Real logs repeat whole messages in bursts (a retry
        // loop, a health check, the same error for every request of a failing
        // dependency): about half of the lines of each Loghub sample repeat one of the
        // last thousand messages byte for byte. A repeated message masks to the same
        // text and so belongs to the same cluster as before, so a small table from the
        // raw message to its cluster answers it without masking: a hash of the raw
        // message's length and three of its words picks a set of two slots, then one
        // compare per slot. Two slots per set, the older one replaced, instead of one:
        // with one, two of the last thousand messages that share a slot keep evicting
        // each other, which cost a tenth of the repeats on the Loghub samples. It is
        // fixed in size (no allocation once its slots have grown, bounded memory), and a
        // slot freed by eviction is recognised by its generation, as in the masked-text
        // cache. It changes no result: the cluster is the one the masked-text cache
        // holds for the same text. (The table is `memo.rs`, shared with the skeleton
        // memo.)
        let level_tag = level.map_or(0u8, |l| level_byte(l) as u8);
        let hash = sampled_hash(message.as_bytes()) ^ u64::from(level_tag);
        let (generations, slots) = (&self.generations, &self.slots);
        let found = self
            .recent
            .find(hash, level_tag, message.as_bytes(), self.tick, |slot, g| {
                generations[slot as usize] == g && slots[slot as usize].is_some()
            });
        if let Some(slot) = found {
            return self.matched(slot, at);
        }
        let slot = self.mine_masked(level, message);
        if message.len() <= RECENT_MAX_BYTES {
            let generation = self.generations[slot as usize];
            self.recent.store(
                hash,
                level_tag,
                message.as_bytes(),
                (slot, generation),
                self.tick,
            );
        }
        self.matched(slot, at)
    }

    /// Counts a message of the cluster in `slot` and returns its match.
    fn matched(&mut self, slot: u32, at: Option<i64>) -> MatchRef<'_> {
        let tick = self.tick;
        let cluster = self.slots[slot as usize]
            .as_mut()
            .expect("placed slot holds a cluster");
        cluster.last_used = tick;
        cluster.count += 1;
        if let Some(at) = at {
            if cluster.first_seen.is_none_or(|f| at < f) {
                cluster.first_seen = Some(at);
            }
        }
        MatchRef {
            signature: cluster.id,
            template: &cluster.template,
        }
    }

    /// Finds the cluster of `message` through the skeleton memo, or masks it and finds
    /// (through the masked-text cache) or creates its cluster.
    fn mine_masked(&mut self, level: Option<LogLevel>, message: &str) -> u32 {
        let memo = message.len() <= skeleton::MAX_BYTES;
        if memo {
            let level_tag = level.map_or(0u8, |l| level_byte(l) as u8);
            let (generations, slots) = (&self.generations, &self.slots);
            let found = self
                .skeletons
                .find(level_tag, message, self.tick, |slot, generation| {
                    generations[slot as usize] == generation && slots[slot as usize].is_some()
                });
            if let Some(slot) = found {
                return slot;
            }
        }
        let slot = self.mask_and_place(level, message);
        if memo {
            let generation = self.generations[slot as usize];
            self.skeletons.store(slot, generation, self.tick);
        }
        slot
    }

    /// Masks `message` and finds (through the masked-text cache) or creates its cluster.
    fn mask_and_place(&mut self, level: Option<LogLevel>, message: &str) -> u32 {
        self.masked.clear();
        if let Some(l) = level {
            self.masked.push(level_byte(l));
        }
        self.prefix = self.masked.len();
        mask_message(message, &mut self.masked, &mut self.scratch);
        match self.cached(self.masked.as_str()) {
            Some(slot) => slot,
            None => {
                let slot = self.place(level);
                if self.cache.len() >= self.config.max_templates.saturating_mul(2) {
                    self.cache.clear();
                }
                let generation = self.generations[slot as usize];
                self.cache
                    .insert(Box::from(self.masked.as_str()), (slot, generation));
                slot
            }
        }
    }

    /// Puts a persisted template back, with its id, so that the messages of that
    /// template get the id they had before a restart (whichever message comes first).
    /// A template already kept under the same id only takes the earlier first sighting.
    pub fn restore(&mut self, record: &TemplateRecord) {
        let kept = match self.by_id.get(&record.signature.0) {
            Some(&slot) => self.slots[slot as usize].as_mut(),
            None => self.retired.get_mut(record.signature.0),
        };
        if let Some(c) = kept {
            if let Some(f) = record.first_seen {
                if c.first_seen.is_none_or(|x| f.0 < x) {
                    c.first_seen = Some(f.0);
                }
            }
            return;
        }
        self.masked.clear();
        if let Some(l) = record.level {
            self.masked.push(level_byte(l));
        }
        self.prefix = self.masked.len();
        // A template is already masked text: tokens separated by single spaces.
        self.spans.clear();
        for token in record.template.split_ascii_whitespace() {
            if self.masked.len() > self.prefix {
                self.masked.push(' ');
            }
            let start = self.masked.len();
            self.masked.push_str(token);
            self.spans.push((start, self.masked.len()));
        }
        self.hash_tokens();
        let branch = self.branch_key(record.level);
        // What was restored is stored already: not a change to report.
        let tracking = self.changed.take();
        let slot = self.create_with_id(branch, record.level, record.signature);
        self.changed = tracking;
        if let Some(c) = self.slots[slot as usize].as_mut() {
            c.first_seen = record.first_seen.map(|t| t.0);
        }
    }

    fn cached(&self, masked: &str) -> Option<u32> {
        let &(slot, generation) = self.cache.get(masked)?;
        (self.generations[slot as usize] == generation && self.slots[slot as usize].is_some())
            .then_some(slot)
    }

    fn hash_tokens(&mut self) {
        self.hashes.clear();
        self.shapes.clear();
        self.names.clear();
        for &(s, e) in &self.spans {
            self.hashes.push(fnv1a(&self.masked.as_bytes()[s..e]));
            self.shapes.push(shape_hash(&self.masked[s..e]));
            self.names.push(is_name(&self.masked.as_bytes()[s..e]));
        }
        // The second token is held to the same rule as a name when it is a word (a
        // letter, nothing masked): `Failed password for …` and `Failed none for …`,
        // `*** register callback …` and `*** unregister callback …` are two messages.
        //
        // Why this generalises: the opening words of a message are its verb and object,
        // written by the program, while its variables come after the words that
        // introduce them (`for user <*>`, `from <*>`, `=<*>`). That is the observation
        // Drain routes on (He et al., ICWS 2017: "tokens in the beginning positions of
        // a log message are more likely to be constants"; its default tree, kept by
        // drain3, follows the first two tokens). The first token routes here already;
        // the second one only vetoes a merge of two different concrete words, so a
        // cluster whose second token was masked (`Deleted <*> files`) is unaffected,
        // and messages shorter than four tokens were never merged over one differing
        // word anyway (one disagreement in three is below the similarity).
        if let Some(&(s, e)) = self.spans.get(1) {
            let second = &self.masked.as_bytes()[s..e];
            if second.iter().any(u8::is_ascii_alphabetic)
                && !second
                    .windows(WILDCARD.len())
                    .any(|w| w == WILDCARD.as_bytes())
            {
                self.names[1] = true;
            }
        }
    }

    /// Finds or creates the cluster of the masked line in `self.masked`.
    fn place(&mut self, level: Option<LogLevel>) -> u32 {
        token_spans(&self.masked, self.prefix, &mut self.spans);
        self.hash_tokens();
        let branch = self.branch_key(level);
        if let Some(slot) = self.best_match(branch) {
            self.generalise(slot);
            return slot;
        }
        // An evicted template comes back with its id and first sighting when the line
        // matches it by the same rule as a live one (see `retired.rs`).
        if let Some(index) = self.best_retired(branch) {
            let cluster = self.retired.revive(branch, index);
            let slot = self.insert(cluster);
            self.generalise(slot);
            return slot;
        }
        let id = fnv1a(self.masked.as_bytes());
        self.create_with_id(branch, level, SignatureId(id))
    }

    /// The retired cluster of `branch` that the line would join, if any.
    fn best_retired(&self, branch: u64) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, cluster) in self.retired.branch(branch).iter().enumerate() {
            if cluster.tokens.len() != self.hashes.len() || cluster.shapes != self.shapes {
                continue;
            }
            let sim = self.similarity(cluster);
            if sim >= self.config.similarity && best.is_none_or(|(_, b)| sim > b) {
                best = Some((i, sim));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Level, token count and routing token (or a wildcard branch when the first token
    /// is only a masked value, e.g. `<*>` or `<*>:<*>`).
    fn branch_key(&self, level: Option<LogLevel>) -> u64 {
        let route = match self.spans.first() {
            Some(&(s, e)) => {
                let first = &self.masked[s..e];
                let informative = first
                    .split(WILDCARD)
                    .any(|part| part.bytes().any(|b| b.is_ascii_alphabetic() || b >= 0x80));
                if informative {
                    self.hashes[0]
                } else {
                    self.wildcard
                }
            }
            None => 0,
        };
        let level = level.map_or(0u8, |l| level_byte(l) as u8);
        fnv1a_from(
            route,
            &[&(self.spans.len() as u64).to_le_bytes()[..], &[level]].concat(),
        )
    }

    fn best_match(&self, branch: u64) -> Option<u32> {
        let members = self.branches.get(&branch)?;
        let mut best: Option<(u32, f64)> = None;
        for &slot in members {
            let Some(cluster) = self.slots[slot as usize].as_ref() else {
                continue;
            };
            if cluster.tokens.len() != self.hashes.len() || cluster.shapes != self.shapes {
                continue;
            }
            let sim = self.similarity(cluster);
            if sim >= self.config.similarity && best.is_none_or(|(_, b)| sim > b) {
                best = Some((slot, sim));
            }
        }
        best.map(|(slot, _)| slot)
    }

    /// Share of informative positions where the template agrees with the line: a
    /// position masked on both sides is left out, and a template `<*>` facing a concrete
    /// token does not agree (see the module docs: no snowballing).
    ///
    /// Two different concrete tokens of which one is a name ([`is_name`]) make the line
    /// a different message outright, whatever the rest says.
    fn similarity(&self, cluster: &Cluster) -> f64 {
        let w = self.wildcard;
        let (mut agree, mut informative) = (0u32, 0u32);
        for (i, (&t, &m)) in cluster.tokens.iter().zip(&self.hashes).enumerate() {
            if t == w && m == w {
                continue;
            }
            informative += 1;
            if t == m {
                agree += 1;
            } else if t != w && m != w && (cluster.names[i] || self.names[i]) {
                return 0.0;
            }
        }
        if informative == 0 {
            1.0
        } else {
            f64::from(agree) / f64::from(informative)
        }
    }

    fn generalise(&mut self, slot: u32) {
        let w = self.wildcard;
        let cluster = self.slots[slot as usize]
            .as_mut()
            .expect("matched slot holds a cluster");
        let mut changed = false;
        for (i, (t, &m)) in cluster.tokens.iter_mut().zip(&self.hashes).enumerate() {
            if *t != m && *t != w {
                *t = w;
                cluster.texts[i] = Box::from(WILDCARD);
                changed = true;
            }
        }
        if changed {
            cluster.template = cluster.texts.join(" ");
            self.mark_changed(slot);
        }
    }

    fn create_with_id(&mut self, branch: u64, level: Option<LogLevel>, id: SignatureId) -> u32 {
        let mut id = id.0;
        // Two clusters with the same creating text cannot normally exist (the second
        // line would have matched the first cluster), but a hash collision or a retired
        // cluster the line did not match could; rehash deterministically. Retired ids
        // are taken too, so that a revived cluster never meets its id on another.
        while self.by_id.contains_key(&id) || self.retired.contains(id) {
            id = fnv1a_from(id, &[0xff]);
        }
        let text = &self.masked[self.prefix..];
        let cluster = Cluster {
            id: SignatureId(id),
            level,
            tokens: self.hashes.clone(),
            shapes: self.shapes.clone(),
            names: self.names.clone(),
            texts: self
                .spans
                .iter()
                .map(|&(s, e)| Box::from(&self.masked[s..e]))
                .collect(),
            template: text.to_string(),
            branch,
            last_used: self.tick,
            count: 0,
            first_seen: None,
            dirty: false,
        };
        self.insert(cluster)
    }

    /// Makes `cluster` live, evicting (retiring) the least recently used clusters first
    /// when the miner or the cluster's branch is full.
    fn insert(&mut self, mut cluster: Cluster) -> u32 {
        if self.live >= self.config.max_templates {
            let n = (self.config.max_templates / 10).max(1);
            self.evict_least_recent(n);
        }
        let branch = cluster.branch;
        let full = self
            .branches
            .get(&branch)
            .filter(|m| m.len() >= self.config.max_branch)
            .and_then(|m| {
                m.iter()
                    .copied()
                    .min_by_key(|&s| self.slots[s as usize].as_ref().map_or(0, |c| c.last_used))
            });
        if let Some(slot) = full {
            self.retire(slot);
        }
        cluster.last_used = self.tick;
        let id = cluster.id.0;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(cluster);
                slot
            }
            None => {
                self.slots.push(Some(cluster));
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        self.by_id.insert(id, slot);
        self.branches.entry(branch).or_default().push(slot);
        self.mark_changed(slot);
        slot
    }

    /// Evicts the `n` least recently used clusters (ties broken by slot, so the choice
    /// is deterministic).
    fn evict_least_recent(&mut self, n: usize) {
        let mut order: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.last_used, i as u32)))
            .collect();
        let n = n.min(order.len());
        if n < order.len() {
            order.select_nth_unstable(n);
        }
        for &(_, slot) in &order[..n] {
            self.retire(slot);
        }
    }

    /// Evicts the cluster in `slot` into the retired list.
    fn retire(&mut self, slot: u32) {
        let Some(cluster) = self.slots[slot as usize].take() else {
            return;
        };
        if let Some(members) = self.branches.get_mut(&cluster.branch) {
            members.retain(|&s| s != slot);
            if members.is_empty() {
                self.branches.remove(&cluster.branch);
            }
        }
        self.by_id.remove(&cluster.id.0);
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        self.retired.retire(cluster);
    }
}

/// Whether a masked token is a *name*: an outcome code kept by masking (`503`), a class
/// name (`java.io.IOException`), or it has an upper-case letter (`AUTO`, `On`,
/// `CalendarAgent`, `E_FAIL`, `IPV6`) and no `/`, `\\`, `@` or `.` inside a word (which
/// make it a file, host, package or address, and those vary per event).
///
/// Why this generalises: a capital letter inside a message marks something the program
/// names — a state, a mode, a class, a component, an error constant — and two messages
/// that differ in such a word are different messages (`scanner Powered On` and
/// `scanner Powered Off`, `mode from AUTO to SUSPENDED` and back). The words that vary
/// per event (user names, host names, ids) are lower case or carry digits in nearly
/// every logging convention, so they still merge by similarity. (Lower-case names
/// with a small index, `en0` or `test1`, are interfaces as often as user names, so
/// they are not names here.) The first token is a
/// routing key already and is not affected.
fn is_name(token: &[u8]) -> bool {
    // Digits without letters survive masking only as an outcome code (`returned 503`).
    if token.iter().any(u8::is_ascii_digit) && !token.iter().any(u8::is_ascii_alphabetic) {
        return true;
    }
    let core = token
        .iter()
        .position(u8::is_ascii_alphabetic)
        .map_or(&token[..0], |s| {
            let e = token
                .iter()
                .rposition(u8::is_ascii_alphanumeric)
                .unwrap_or(s);
            &token[s..=e]
        });
    if super::mask::is_class_name(core) {
        return true;
    }
    let mut upper = false;
    for (i, &c) in token.iter().enumerate() {
        match c {
            // Inside a word only: a sentence's final dot does not make a file name.
            b'.' if token.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) => return false,
            b'/' | b'\\' | b'@' => return false,
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
    }
    upper
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_template_same_id_and_generalises() {
        let mut m = TemplateMiner::default();
        let a = m.add("Invalid user alice from 10.0.0.1");
        let b = m.add("Invalid user bob from 10.0.0.2");
        assert_eq!(a.signature, b.signature);
        assert_eq!(a.template, "Invalid user alice from <*>");
        assert_eq!(b.template, "Invalid user <*> from <*>");
        assert_eq!(m.template(a.signature), Some("Invalid user <*> from <*>"));
        assert_eq!(m.count(a.signature), Some(2));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn different_first_token_or_length_stays_apart() {
        let mut m = TemplateMiner::default();
        let a = m.add("cupsd startup succeeded");
        let b = m.add("klogd startup succeeded");
        let c = m.add("cupsd startup succeeded quickly");
        assert_ne!(a.signature, b.signature);
        assert_ne!(a.signature, c.signature);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn a_different_second_word_is_a_different_message() {
        let mut m = TemplateMiner::default();
        let password = m.add("Failed password for invalid user alice from 10.0.0.1 port 22 ssh2");
        let none = m.add("Failed none for invalid user bob from 10.0.0.2 port 23 ssh2");
        assert_ne!(password.signature, none.signature);
        let register = m.add("*** register callback for com.example.app.Monitor@712d093");
        let unregister = m.add("*** unregister callback for com.example.app.Monitor@3c1f2e");
        assert_ne!(register.signature, unregister.signature);
        // Later words still merge, and a masked second token vetoes nothing.
        let carol = m.add("Failed password for invalid user carol from 10.0.0.3 port 24 ssh2");
        assert_eq!(carol.signature, password.signature);
        let a = m.add("Deleted 12 stale files in cache");
        let b = m.add("Deleted 3 stale entries in cache");
        assert_eq!(a.signature, b.signature);
        assert_eq!(b.template, "Deleted <*> stale <*> in cache");
    }

    /// Lines that differ only in their numbers are answered by the skeleton memo, except
    /// in the numbers masking keeps (outcome codes, small indexes), which the skeleton
    /// spells out: a kept code never lends its cluster to another code.
    #[test]
    fn numbers_that_masking_keeps_are_not_taken_from_the_skeleton_memo() {
        let mut m = TemplateMiner::default();
        let a = m.add("request 7 returned 503");
        let b = m.add("request 8 returned 404");
        let c = m.add("request 9 returned 503");
        assert_eq!(a.template, "request <*> returned 503");
        assert_eq!(b.template, "request <*> returned 404");
        assert_ne!(a.signature, b.signature);
        assert_eq!(a.signature, c.signature);
        let d = m.add("request 10 returned 12");
        assert_eq!(d.template, "request <*> returned <*>");
        let e = m.add("request 11 returned 13");
        assert_eq!(e.signature, d.signature);
        let f = m.add("request 12 returned 404.");
        assert_eq!(f.template, "request <*> returned 404.");
        let x = m.add("worker 12 done in 30ms on en0");
        let y = m.add("worker 7 done in 5ms on en0");
        let z = m.add("worker 7 done in 5ms on en1");
        assert_eq!(x.signature, y.signature);
        assert_eq!(y.template, "worker <*> done in <*> on en0");
        assert_eq!(z.template, "worker <*> done in <*> on <*>");
        let p = m.add("session 4 opened for ssh2 by 10.0.0.1");
        let q = m.add("session 5 opened for ssh1 by 10.0.0.2");
        assert_eq!(p.template, "session <*> opened for ssh2 by <*>");
        assert_eq!(q.template, "session <*> opened for <*> by <*>");
        assert!(m.skeletons.capacity() > 0);
    }

    #[test]
    fn short_messages_need_close_agreement() {
        let mut m = TemplateMiner::default();
        let on = m.add("onReceive action: android.intent.action.SCREEN_ON");
        let off = m.add("onReceive action: android.intent.action.SCREEN_OFF");
        assert_ne!(on.signature, off.signature);
    }

    #[test]
    fn id_is_hash_of_first_masked_line_and_displays_as_hex() {
        let mut m = TemplateMiner::default();
        let a = m.add("timeout after 30ms");
        assert_eq!(a.signature.0, fnv1a(b"timeout after <*>"));
        let text = a.signature.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<SignatureId>(), Ok(a.signature));
        assert_eq!(
            serde_json::to_string(&a.signature).unwrap(),
            format!("\"{text}\"")
        );
        assert!("xyz".parse::<SignatureId>().is_err());
    }

    #[test]
    fn cap_evicts_least_recently_used() {
        let mut m = TemplateMiner::new(MinerConfig {
            max_templates: 10,
            ..MinerConfig::default()
        });
        let keep = m.add("heartbeat ok").signature;
        for i in 0..100 {
            let word: String = (0..6)
                .map(|k| (b'a' + ((i * 7 + k * 3) % 26) as u8) as char)
                .collect();
            m.add(&format!("{word} unique event"));
            m.add("heartbeat ok");
            assert!(m.len() <= 10);
        }
        assert_eq!(m.template(keep), Some("heartbeat ok"));
    }

    /// A template whose first line had a word variable (so its id is not the hash of
    /// every line's masked text) keeps its id, template and first sighting when it is
    /// evicted and met again, and `New` stays false for it; a template never seen still
    /// gets a fresh id.
    #[test]
    fn evicted_template_keeps_its_id_and_first_sighting() {
        let mut m = TemplateMiner::new(MinerConfig {
            max_templates: 20,
            ..MinerConfig::default()
        });
        let first = m
            .add_event(
                LogLevel::Error,
                "Invalid user alice from 10.0.0.1",
                Timestamp(1_000),
            )
            .signature;
        m.add_event(
            LogLevel::Error,
            "Invalid user bob from 10.0.0.2",
            Timestamp(2_000),
        );
        // More new templates than the miner keeps, fewer than it remembers retired.
        for i in 0..30 {
            m.add_event(
                LogLevel::Error,
                &format!("{} unique event", word(i + 1_000)),
                Timestamp(3_000 + i as i64),
            );
        }
        assert!(!m.by_id.contains_key(&first.0), "the template was evicted");
        assert!(m.len() <= 20 && m.retired_len() <= 20);
        // Still known while retired.
        assert_eq!(m.first_seen(first), Some(Timestamp(1_000)));
        let again = m
            .add_event(
                LogLevel::Error,
                "Invalid user carol from 10.0.0.3",
                Timestamp(9_000),
            )
            .signature;
        assert_eq!(again, first);
        assert_eq!(m.template(first), Some("Invalid user <*> from <*>"));
        // A fresh cluster would have taken the hash of this line's masked text.
        assert_ne!(first.0, fnv1a(b"\x04Invalid user carol from <*>"));
        assert!(m.by_id.contains_key(&first.0), "revived");
        assert_eq!(m.first_seen(first), Some(Timestamp(1_000)));
        assert_eq!(m.count(first), Some(3));
        // A message nobody saw is still new.
        let fresh = m
            .add_event(LogLevel::Error, "disk quota exceeded", Timestamp(9_001))
            .signature;
        assert_eq!(fresh.0, fnv1a(b"\x04disk quota exceeded"));
        assert_eq!(m.first_seen(fresh), Some(Timestamp(9_001)));
    }

    /// Letters-only text for `n`, so masking cannot turn it into `<*>`.
    fn word(mut n: u64) -> String {
        let mut w = String::new();
        loop {
            w.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
            if n == 0 {
                return w;
            }
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_million_unique_messages() {
        let cap = 5_000;
        let mut m = TemplateMiner::new(MinerConfig {
            max_templates: cap,
            ..MinerConfig::default()
        });
        for i in 0..1_000_000u64 {
            // A unique first token makes every message a new template.
            m.add_ref(&format!("{} failed with {}", word(i), word(i * 7)));
            if i % 100_000 == 0 {
                assert!(m.len() <= cap);
            }
        }
        assert!(m.len() <= cap);
        assert!(m.slots.len() <= cap, "slots {}", m.slots.len());
        assert!(m.cache.len() <= 2 * cap, "cache {}", m.cache.len());
        assert!(m.branches.len() <= cap && m.by_id.len() <= cap);
        assert!(m.retired_len() <= cap, "retired {}", m.retired_len());
        assert!(m.recent.capacity() <= RECENT_SETS * RECENT_WAYS);
        assert!(m.skeletons.capacity() <= 512);
        // The most recent templates are the ones kept.
        let last = m.add("aaaaaaaaaaa failed with x");
        assert!(m.template(last.signature).is_some());
    }
}

//! Reading the share: the parallel walk, each file and folder a record,
//! classified, dated by markers and paths, its content read when a rule
//! asks.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};

use super::checkpoint::{self, content_key};
use super::owners::OwnerNames;
use super::transport::{FileStat, OpenFolder};
use super::{FileshareConfig, FileshareConfigError, MarkerConfig, MarkerDateFrom};
use crate::local_fs::{date_from_path, marker_date, name_to_text, read_prefix, to_utc};
use crate::record_cache::StampBuilder;
use crate::{ConnectorError, ProblemKind, Record, RecordKind, RecordSink, ScanContext, ScanReport};

/// The config, compiled once.
#[derive(Debug, Clone)]
pub(crate) struct WalkPlan {
    exclude: GlobSet,
    classify: GlobSet,
    classes: Vec<String>,
    folders: GlobSet,
    folder_classes: Vec<String>,
    markers: Vec<MarkerConfig>,
    /// Files whose path holds their date.
    path_dates: GlobSet,
    /// Paths that name their custodian: the glob, and which folder name is it.
    custodian_from: Vec<(globset::GlobMatcher, usize)>,
}

/// `Hem/{custodian}/**` as a glob (`Hem/*/**`) and the position of `{custodian}`.
fn custodian_pattern(pattern: &str) -> Result<(globset::GlobMatcher, usize), FileshareConfigError> {
    let invalid = |why: &'static str| FileshareConfigError::CustodianPattern {
        pattern: pattern.to_owned(),
        why,
    };
    let components: Vec<&str> = pattern.split('/').collect();
    let positions: Vec<usize> = components
        .iter()
        .enumerate()
        .filter(|(_, component)| **component == "{custodian}")
        .map(|(index, _)| index)
        .collect();
    let [position] = positions.as_slice() else {
        return Err(invalid("needs {custodian} once, as a whole folder name"));
    };
    if components[..*position]
        .iter()
        .any(|component| component.contains("**"))
    {
        return Err(invalid("no ** before {custodian}"));
    }
    let glob = pattern.replace("{custodian}", "*");
    let matcher = GlobBuilder::new(&glob)
        .literal_separator(true)
        .build()
        .map_err(|source| FileshareConfigError::Glob {
            glob: pattern.to_owned(),
            source,
        })?
        .compile_matcher();
    Ok((matcher, *position))
}

/// Folders whose inherited dates and summaries are remembered at most.
#[cfg(not(test))]
const DIR_CACHE_ENTRIES: usize = 1 << 16;
/// Small in tests, so that they forget and ask again.
#[cfg(test)]
const DIR_CACHE_ENTRIES: usize = 8;

fn compile(globs: &[&str]) -> Result<GlobSet, FileshareConfigError> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|source| FileshareConfigError::Glob {
                glob: (*glob).to_owned(),
                source,
            })?;
        set.add(compiled);
    }
    set.build().map_err(|source| FileshareConfigError::Glob {
        glob: globs.join(", "),
        source,
    })
}

impl WalkPlan {
    pub(crate) fn new(config: &FileshareConfig) -> Result<WalkPlan, FileshareConfigError> {
        let exclude: Vec<&str> = config.exclude.iter().map(String::as_str).collect();
        let classify: Vec<&str> = config.classify.iter().map(|c| c.glob.as_str()).collect();
        let folders: Vec<&str> = config.folders.iter().map(|c| c.glob.as_str()).collect();
        let path_dates: Vec<&str> = config.path_dates.iter().map(String::as_str).collect();
        Ok(WalkPlan {
            exclude: compile(&exclude)?,
            classify: compile(&classify)?,
            classes: config.classify.iter().map(|c| c.class.clone()).collect(),
            folders: compile(&folders)?,
            folder_classes: config.folders.iter().map(|c| c.class.clone()).collect(),
            markers: config.markers.clone(),
            path_dates: compile(&path_dates)?,
            custodian_from: config
                .custodian_from
                .iter()
                .map(|pattern| custodian_pattern(pattern))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The custodian a path names (see `custodian_from`), if it does.
    fn custodian_in<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.custodian_from.iter().find_map(|(matcher, position)| {
            if matcher.is_match(path) {
                path.split('/')
                    .nth(*position)
                    .filter(|name| !name.is_empty())
            } else {
                None
            }
        })
    }

    fn tracks_directories(&self) -> bool {
        !self.markers.is_empty() || !self.folder_classes.is_empty()
    }

    fn is_marker(&self, name: &std::ffi::OsStr) -> bool {
        self.markers
            .iter()
            .any(|marker| name == marker.file.as_str())
    }
}

/// What a directory passes down to everything below it.
#[derive(Debug, Default)]
struct DirInfo {
    /// Marker dates in effect (the nearest marker of each name wins).
    dates: Vec<(String, DateTime<Utc>)>,
    /// Summarised folders (relative paths) this directory is inside of, or is.
    folders: Vec<String>,
}

impl DirInfo {
    /// Add what the records below this directory inherit to a stamp.
    fn stamp(&self, mut stamp: StampBuilder) -> StampBuilder {
        for (name, date) in &self.dates {
            stamp = stamp
                .text(name)
                .signed(date.timestamp())
                .number(u64::from(date.timestamp_subsec_nanos()));
        }
        stamp
    }
}

/// A summarised folder being accumulated.
#[derive(Debug)]
struct FolderState {
    class: String,
    custodian: Arc<str>,
    modified: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    files: u64,
}

struct Shared<'a> {
    root: &'a Path,
    /// The root with every link in it resolved: a followed link must lead
    /// inside it.
    real_root: PathBuf,
    follow_symlinks: bool,
    plan: &'a WalkPlan,
    context: &'a ScanContext,
    user_names: OwnerNames,
    report: Mutex<ScanReport>,
    dirs: Mutex<HashMap<PathBuf, Arc<DirInfo>>>,
    folders: Mutex<HashMap<String, FolderState>>,
    failure: Mutex<Option<ConnectorError>>,
}

/// Walk the share and send one record per file, then one per summarised folder.
pub(crate) fn walk(
    config: &FileshareConfig,
    plan: &WalkPlan,
    context: &ScanContext,
    sink: &RecordSink,
) -> Result<ScanReport, ConnectorError> {
    let root = config.root.as_path();
    let unreadable = |source: std::io::Error| ConnectorError::RootUnreadable {
        path: root.display().to_string(),
        source,
    };
    let metadata = std::fs::metadata(root).map_err(unreadable)?;
    if !metadata.is_dir() {
        return Err(unreadable(std::io::Error::other("not a directory")));
    }
    // A share that is mounted but unreadable would otherwise look empty, and an
    // empty share resolves every finding.
    std::fs::read_dir(root).map_err(unreadable)?;

    let shared = Shared {
        root,
        real_root: std::fs::canonicalize(root).map_err(unreadable)?,
        follow_symlinks: config.follow_symlinks,
        plan,
        context,
        user_names: OwnerNames::default(),
        report: Mutex::new(ScanReport::default()),
        dirs: Mutex::new(HashMap::new()),
        folders: Mutex::new(HashMap::new()),
        failure: Mutex::new(None),
    };
    WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(config.follow_symlinks)
        .threads(config.threads)
        .build_parallel()
        .run(|| {
            let mut worker = Worker {
                shared: &shared,
                sink: sink.clone(),
                report: ScanReport::default(),
                folder: OpenFolder::default(),
                last_owner: None,
            };
            Box::new(move |entry| worker.visit(entry))
        });

    if let Some(failure) = take(&shared.failure) {
        return Err(failure);
    }
    if context.cancel.is_cancelled() {
        return Err(ConnectorError::Cancelled);
    }
    let mut report = take(&shared.report);
    let folders = take(&shared.folders);
    let mut sink = sink.clone();
    for (path, state) in folders {
        let custodian = shared
            .plan
            .custodian_in(&path)
            .map_or_else(|| state.custodian.to_string(), str::to_owned);
        let stamp = StampBuilder::default()
            .text(&custodian)
            .text(&state.class)
            .number(state.files)
            .signed(
                state
                    .modified
                    .map_or(i64::MIN, |time| time.timestamp_micros()),
            )
            .signed(
                state
                    .newest
                    .map_or(i64::MIN, |time| time.timestamp_micros()),
            )
            .finish();
        if let Some(cache) = &context.records
            && cache.unchanged(&path, stamp)
        {
            report.add_work("records_unchanged", 1);
            continue;
        }
        let mut record = Record::new(RecordKind::Folder, context.source.clone(), path);
        record.stamp = context.records.as_ref().map(|_| stamp);
        record.container = parent_of(&record.path).to_owned();
        record.custodian = Some(custodian);
        record.timestamps.modified = state.modified;
        record.timestamps.last_activity = state.newest.or(state.modified);
        record.attributes.insert("class".into(), state.class);
        record
            .attributes
            .insert("file_count".into(), state.files.to_string());
        sink.send_blocking(record)?;
        report.records += 1;
    }
    sink.flush_blocking()?;
    Ok(report)
}

fn take<T: Default>(mutex: &Mutex<T>) -> T {
    match mutex.lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map(|(parent, _)| parent)
        .unwrap_or("")
}

struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    sink: RecordSink,
    report: ScanReport,
    /// The folder whose files this thread is reading.
    folder: OpenFolder,
    /// The last uid this thread named, and its name.
    last_owner: Option<(u32, Arc<str>)>,
}

impl Drop for Worker<'_, '_> {
    fn drop(&mut self) {
        // Walker threads may block: send the last batch here, in order.
        if let Err(error) = self.sink.flush_blocking()
            && let Ok(mut failure) = self.shared.failure.lock()
        {
            failure.get_or_insert(error);
        }
        let local = std::mem::take(&mut self.report);
        match self.shared.report.lock() {
            Ok(mut report) => report.merge(local),
            Err(poisoned) => poisoned.into_inner().merge(local),
        }
    }
}

impl Worker<'_, '_> {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> WalkState {
        if self.shared.context.cancel.is_cancelled() {
            return WalkState::Quit;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                self.problem(&error, None);
                return WalkState::Continue;
            }
        };
        let Some(relative) = self.relative_text(entry.path()) else {
            return WalkState::Continue;
        };
        if entry.depth() > 0 && name_to_text(entry.file_name()).1 {
            self.report.count(ProblemKind::NonUtf8Name);
        }
        if entry.depth() > 0 && self.shared.plan.exclude.is_match(&relative) {
            return WalkState::Skip;
        }
        let Some(file_type) = entry.file_type() else {
            return WalkState::Continue;
        };
        // A link is followed (when the config says so) only to a place inside
        // the root, and read there: what lies outside the share is not its.
        let mut target: Option<PathBuf> = None;
        if entry.path_is_symlink() && self.shared.follow_symlinks {
            match std::fs::canonicalize(entry.path()) {
                Ok(real) if real.starts_with(&self.shared.real_root) => target = Some(real),
                Ok(_) => {
                    self.report.count(ProblemKind::SymlinkOutside);
                    return WalkState::Skip;
                }
                Err(error) => {
                    self.problem(&ignore::Error::Io(error), Some(&relative));
                    return WalkState::Skip;
                }
            }
        }
        if file_type.is_dir() {
            if self.shared.plan.tracks_directories() {
                self.dir_info(entry.path(), &relative);
            }
            return WalkState::Continue;
        }
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_fifo()
                || file_type.is_socket()
                || file_type.is_block_device()
                || file_type.is_char_device()
            {
                // Never opened: it could block the walker, or never end.
                self.report.count(ProblemKind::SpecialFile);
                return WalkState::Continue;
            }
        }
        if !file_type.is_file() || self.shared.plan.is_marker(entry.file_name()) {
            return WalkState::Continue;
        }
        let path = target.as_deref().unwrap_or(entry.path());
        let metadata = match self.folder.stat(path, self.shared.follow_symlinks) {
            Ok(metadata) => metadata,
            Err(error) => {
                self.problem(&ignore::Error::Io(error), Some(&relative));
                return WalkState::Continue;
            }
        };
        let Some(mut record) = self.file_record(entry.path(), relative, &metadata) else {
            return WalkState::Continue;
        };
        if let Some(plan) = &self.shared.context.content {
            let unread_before = self.report.unread_prefixes.len();
            self.read_content(plan, path, &metadata, &mut record);
            // Not read whole: tried again next scan, never left out.
            if self.report.unread_prefixes.len() > unread_before {
                record.stamp = None;
            }
        }
        match self.sink.send_blocking(record) {
            Ok(()) => {
                self.report.records += 1;
                WalkState::Continue
            }
            Err(error) => {
                if let Ok(mut failure) = self.shared.failure.lock() {
                    failure.get_or_insert(error);
                }
                WalkState::Quit
            }
        }
    }

    /// The path relative to the root, `/`-separated, names that are not UTF-8
    /// escaped.
    fn relative_text(&self, path: &Path) -> Option<String> {
        use std::os::unix::ffi::OsStrExt;
        // The walker joins names onto the root as given: the common case is
        // the root's bytes, a `/`, and UTF-8 names with single separators.
        let (root, full) = (
            self.shared.root.as_os_str().as_bytes(),
            path.as_os_str().as_bytes(),
        );
        if full == root {
            return Some(String::new());
        }
        if let Some(rest) = full
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix(b"/"))
            && let Ok(text) = std::str::from_utf8(rest)
            && !text.is_empty()
            && !text.starts_with('/')
            && !text.ends_with('/')
            && !text.contains("//")
            && !text.split('/').any(|name| name == "." || name == "..")
        {
            return Some(text.to_owned());
        }
        let relative = path.strip_prefix(self.shared.root).ok()?;
        let mut text = String::new();
        for component in relative.components() {
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(&name_to_text(component.as_os_str()).0);
        }
        Some(text)
    }

    /// Read a text file a content rule looks at, within the limit, and keep
    /// what the detectors found. Too large or unreadable: counted, and the
    /// record's findings stay open.
    fn read_content(
        &mut self,
        plan: &crate::content::ContentPlan,
        path: &Path,
        metadata: &FileStat,
        record: &mut Record,
    ) {
        let text = crate::content::is_text_name(&record.path);
        let document =
            !text && plan.extractor.is_some() && tillsyn_extract::kind(&record.path, &[]).is_some();
        if !(text || document) || !(plan.wants)(record) {
            return;
        }
        let unread = |report: &mut ScanReport, kind: ProblemKind| {
            report.count(kind);
            report.unread_prefixes.push(record.path.clone());
        };
        if metadata.size > plan.limits.file_bytes {
            unread(&mut self.report, ProblemKind::OversizedContent);
            return;
        }
        // Unchanged since the last scan (same size, mtime and inode, same
        // rules): what the detectors found then stands, and the file is not
        // read again.
        let key = content_key(self.shared.context, plan, &record.path);
        let content_plan = checkpoint::plan(self.shared.context);
        if let Some((cached, content)) =
            checkpoint::cached(self.shared.context, &key, &content_plan, metadata)
        {
            self.report.add_work("files_content_cached", 1);
            self.report.checkpoints.insert(key, cached);
            if content.unreadable > 0 {
                unread(&mut self.report, ProblemKind::UnreadableContent);
            } else {
                record.content = Some(content);
            }
            return;
        }
        let bytes = match read_prefix(
            path,
            usize::try_from(plan.limits.file_bytes).unwrap_or(usize::MAX),
        ) {
            Ok(bytes) => bytes,
            Err(error) => {
                let kind = match error.kind() {
                    std::io::ErrorKind::NotFound => ProblemKind::Vanished,
                    std::io::ErrorKind::PermissionDenied => ProblemKind::PermissionDenied,
                    _ => ProblemKind::Io,
                };
                unread(&mut self.report, kind);
                return;
            }
        };
        self.report.add_work("files_content_read", 1);
        let part = if tillsyn_extract::is_html_name(&record.path) {
            let html = String::from_utf8_lossy(&bytes);
            let text = tillsyn_extract::html::text(&html);
            Some(Ok((
                plan.detect(crate::content::Part::File, text.as_bytes()),
                false,
            )))
        } else if text {
            Some(Ok((plan.detect(crate::content::Part::File, &bytes), false)))
        } else {
            plan.document(crate::content::Part::File, &record.path, &bytes)
        };
        let content = match part {
            // Its text was cut at the limit: what stood after the cut was not
            // read, so the file is not fully judged.
            Some(Ok((part, true))) => {
                unread(&mut self.report, ProblemKind::OversizedContent);
                crate::content::Content {
                    parts: vec![part],
                    oversized: 1,
                    ..Default::default()
                }
            }
            Some(Ok((part, false))) => crate::content::Content {
                parts: vec![part],
                ..Default::default()
            },
            Some(Err(_)) => {
                unread(&mut self.report, ProblemKind::UnreadableContent);
                crate::content::Content {
                    unreadable: 1,
                    ..Default::default()
                }
            }
            None => return,
        };
        checkpoint::remember(
            &mut self.report.checkpoints,
            key,
            &content_plan,
            metadata,
            &content,
        );
        // A cut document's matches count; its record stays open all the same
        // (the cut was counted above).
        if content.unreadable == 0 {
            record.content = Some(content);
        }
    }

    /// The file's record; `None` when the scan's record cache finds it
    /// unchanged (what it inherits from its folders included), so that it is
    /// left out. Either way it counts in the summarised folders above it.
    fn file_record(
        &mut self,
        path: &Path,
        relative: String,
        metadata: &FileStat,
    ) -> Option<Record> {
        let shared = self.shared;
        let container = parent_of(&relative).to_owned();
        let uid_name: Arc<str>;
        let custodian = match shared.plan.custodian_in(&relative) {
            Some(named) => named,
            None => {
                uid_name = match &self.last_owner {
                    Some((uid, name)) if *uid == metadata.uid => name.clone(),
                    _ => {
                        let name = shared.user_names.name(metadata.uid);
                        self.last_owner = Some((metadata.uid, name.clone()));
                        name
                    }
                };
                &uid_name
            }
        };
        let modified = metadata.modified();
        let inherited = match path.parent() {
            Some(parent) if shared.plan.tracks_directories() => {
                let info = self.dir_info(parent, &container);
                if !info.folders.is_empty()
                    && let Ok(mut folders) = shared.folders.lock()
                {
                    for folder in &info.folders {
                        if let Some(state) = folders.get_mut(folder) {
                            state.files += 1;
                            state.newest = state.newest.max(modified);
                        }
                    }
                }
                Some(info)
            }
            _ => None,
        };
        let stamp = shared.context.records.as_ref().map(|cache| {
            let stamp = StampBuilder::default()
                .text(custodian)
                .number(metadata.size)
                .number(metadata.ino)
                .number(metadata.dev)
                .signed(metadata.mtime.0)
                .number(u64::from(metadata.mtime.1))
                .signed(metadata.ctime.0)
                .number(u64::from(metadata.ctime.1));
            let stamp = match &inherited {
                Some(info) => info.stamp(stamp),
                None => stamp,
            }
            .finish();
            (cache, stamp)
        });
        if let Some((cache, stamp)) = stamp
            && cache.unchanged(&relative, stamp)
        {
            self.report.add_work("records_unchanged", 1);
            // What the detectors found in it stays remembered.
            if let Some(plan) = &shared.context.content {
                let key = content_key(shared.context, plan, &relative);
                if let Some(cached) = shared.context.checkpoints.get(&key) {
                    self.report.checkpoints.insert(key, cached.clone());
                }
            }
            return None;
        }
        let custodian = custodian.to_owned();
        let mut record = Record::new(RecordKind::File, shared.context.source.clone(), relative);
        record.stamp = stamp.map(|(_, stamp)| stamp);
        record.container = container;
        record.custodian = Some(custodian);
        record.timestamps.modified = modified;
        record.timestamps.created = metadata.created();
        if shared.plan.path_dates.is_match(&record.path)
            && let Some(date) = date_from_path(&record.path, shared.context.timezone)
        {
            record.dates.insert("path_date".into(), date);
        }
        if let Some(class) = shared
            .plan
            .classify
            .matches(&record.path)
            .into_iter()
            .min()
            .and_then(|index| shared.plan.classes.get(index))
        {
            record.attributes.insert("class".into(), class.clone());
        }
        record
            .attributes
            .insert("size_bytes".into(), metadata.size.to_string());
        if let Some(info) = inherited {
            for (name, date) in &info.dates {
                record.dates.insert(name.clone(), *date);
            }
        }
        Some(record)
    }

    /// What `dir` inherits and adds, computed once per directory. Parents are
    /// normally visited before their children; when not, they are computed here.
    fn dir_info(&self, dir: &Path, relative: &str) -> Arc<DirInfo> {
        let shared = self.shared;
        if let Ok(dirs) = shared.dirs.lock()
            && let Some(info) = dirs.get(dir)
        {
            return info.clone();
        }
        let mut info = DirInfo::default();
        if dir != shared.root
            && let Some(parent) = dir.parent()
            && parent.starts_with(shared.root)
        {
            let parent_info = self.dir_info(parent, parent_of(relative));
            info.dates = parent_info.dates.clone();
            info.folders = parent_info.folders.clone();
        }
        for marker in &shared.plan.markers {
            if let Some(date) = self.marker_date(&dir.join(&marker.file), relative, marker) {
                info.dates.retain(|(name, _)| name != &marker.date);
                info.dates.push((marker.date.clone(), date));
            }
        }
        if dir != shared.root
            && let Some(class) = shared
                .plan
                .folders
                .matches(relative)
                .into_iter()
                .min()
                .and_then(|index| shared.plan.folder_classes.get(index))
        {
            info.folders.push(relative.to_owned());
            let metadata = std::fs::symlink_metadata(dir).ok();
            let state = FolderState {
                class: class.clone(),
                custodian: shared
                    .user_names
                    .name(metadata.as_ref().map(|m| m.uid()).unwrap_or(0)),
                modified: metadata.and_then(|m| m.modified().ok()).and_then(to_utc),
                newest: None,
                files: 0,
            };
            if let Ok(mut folders) = shared.folders.lock() {
                folders.entry(relative.to_owned()).or_insert(state);
            }
        }
        let info = Arc::new(info);
        if let Ok(mut dirs) = shared.dirs.lock() {
            // Bounded on trees of millions of folders: when full, start over
            // (what a folder inherits is read again when asked for).
            if dirs.len() >= DIR_CACHE_ENTRIES {
                dirs.clear();
            }
            dirs.insert(dir.to_path_buf(), info.clone());
        }
        info
    }

    /// The date a folder's marker gives. A marker that is there but cannot be
    /// read or dated (not a regular file, unreadable, no date in it) is
    /// counted, and what lies under its folder (`relative`) is not fully
    /// judged: without the date its findings would resolve.
    fn marker_date(
        &self,
        path: &Path,
        relative: &str,
        marker: &MarkerConfig,
    ) -> Option<DateTime<Utc>> {
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => {
                self.bad_marker(relative);
                return None;
            }
        };
        let date = if !metadata.is_file() {
            None
        } else {
            match marker.date_from {
                MarkerDateFrom::Mtime => metadata.modified().ok().and_then(to_utc),
                MarkerDateFrom::Content => read_prefix(path, 4096).ok().and_then(|bytes| {
                    marker_date(
                        &String::from_utf8_lossy(&bytes),
                        self.shared.context.timezone,
                    )
                }),
            }
        };
        if date.is_none() {
            self.bad_marker(relative);
        }
        date
    }

    fn bad_marker(&self, relative: &str) {
        if let Ok(mut report) = self.shared.report.lock() {
            report.count(ProblemKind::BadMarker);
            report.unread_prefixes.push(relative.to_owned());
        }
    }

    fn problem(&mut self, error: &ignore::Error, relative: Option<&str>) {
        match error {
            ignore::Error::Partial(errors) => {
                for error in errors {
                    self.problem(error, relative);
                }
            }
            ignore::Error::WithLineNumber { err, .. } | ignore::Error::WithDepth { err, .. } => {
                self.problem(err, relative);
            }
            ignore::Error::WithPath { path, err } => {
                let relative = self.relative_text(path);
                self.problem(err, Some(relative.as_deref().unwrap_or("")));
            }
            ignore::Error::Loop { .. } => self.report.count(ProblemKind::SymlinkLoop),
            ignore::Error::Io(io) => {
                let kind = match io.kind() {
                    std::io::ErrorKind::PermissionDenied => ProblemKind::PermissionDenied,
                    std::io::ErrorKind::NotFound => ProblemKind::Vanished,
                    _ => ProblemKind::Io,
                };
                self.report.count(kind);
                if kind.hides_content() {
                    // Unknown place: protect the whole source rather than guess.
                    self.report
                        .unread_prefixes
                        .push(relative.unwrap_or("").to_owned());
                }
            }
            _ => {
                self.report.count(ProblemKind::Io);
                self.report
                    .unread_prefixes
                    .push(relative.unwrap_or("").to_owned());
            }
        }
    }
}

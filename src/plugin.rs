//! Third-party logits processors from shared libraries: the host side of the C plugin table
//! [`IgPluginV1`] (defined with the C API in `include/infogravity.h`). A loaded plugin's
//! instances are [`LogitsProcessor`]s, so they run where every host processor runs: first in
//! each step, before the field is measured ([`crate::GravityProcessor::push_pre`]).
//!
//! Everything a plugin can get wrong is an [`Error::Plugin`] naming it, and the host goes on: a
//! library that does not load, no `ig_plugin_entry` symbol, a NULL table, a `struct_size` below
//! version 1, another ABI version, a required function missing, a failing `create`, `apply` or
//! `accept`, and NaN or +inf written into the row (checked after every `apply`: one read of the
//! row per plugin per step). A plugin that crashes or aborts takes the process with it: it is
//! native code in the host's address space.
//!
//! ```no_run
//! # fn main() -> infogravity::Result<()> {
//! use infogravity::{Config, GravityProcessor, Plugin};
//! let plugin = Plugin::load("libban_phrases.so".as_ref())?;
//! let mut p = GravityProcessor::new(Config::default(), 49_152)?;
//! p.push_pre(Box::new(plugin.instance(Some(r#"{"phrases":[[1,2,3]]}"#), 49_152)?));
//! # Ok(()) }
//! ```

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ffi::{IG_PLUGIN_ABI_VERSION, IG_PLUGIN_V1_SIZE, IgPluginEntry, IgPluginV1};
use crate::processor::LogitsProcessor;

/// Room for a plugin's error message.
const ERR_CAP: usize = 512;

/// A loaded plugin library and its checked table.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Loaded>,
}

struct Loaded {
    table: IgPluginV1,
    name: String,
    // Dropped last: the table's functions live in it.
    _lib: libloading::Library,
}

// SAFETY: the table is plain data (function pointers and a static name) that the plugin
// contract makes callable from any thread; the library handle is Send + Sync itself.
unsafe impl Send for Loaded {}
// SAFETY: as above; nothing in `Loaded` is mutated after loading.
unsafe impl Sync for Loaded {}

fn fail(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::Plugin(format!("plugin {name}: {msg}"))
}

impl Plugin {
    /// Load a plugin library and check its table (see the module docs for what is checked).
    pub fn load(path: &Path) -> Result<Plugin> {
        let shown = path.display().to_string();
        // SAFETY: loading a library runs its initialisers: the caller chose to trust this file
        // as a plugin (that is what loading a plugin means).
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| fail(&shown, format_args!("cannot load: {e}")))?;
        // SAFETY: the symbol's type is the documented plugin entry point.
        let entry = unsafe { lib.get::<IgPluginEntry>(b"ig_plugin_entry\0") }.map_err(|_| {
            fail(
                &shown,
                "exports no ig_plugin_entry (not an infogravity plugin)",
            )
        })?;
        // SAFETY: calling the entry point is the plugin's documented first call.
        let ptr = unsafe { entry() };
        if ptr.is_null() {
            return Err(fail(&shown, "ig_plugin_entry returned NULL"));
        }
        if !ptr.is_aligned() {
            return Err(fail(&shown, "ig_plugin_entry returned a misaligned table"));
        }
        // SAFETY: non-NULL and aligned; every table version starts with a size_t.
        let size = unsafe { ptr.cast::<usize>().read() };
        if size < IG_PLUGIN_V1_SIZE {
            return Err(fail(
                &shown,
                format_args!(
                    "IgPluginV1.struct_size = {size} is smaller than version 1 ({IG_PLUGIN_V1_SIZE} bytes)"
                ),
            ));
        }
        // SAFETY: at least the v1 size is readable (checked above); the table is plain data.
        let table = unsafe { ptr.read() };
        let name = if table.name.is_null() {
            shown
        } else {
            // SAFETY: a non-NULL name is a static NUL-terminated string (the plugin contract).
            unsafe { CStr::from_ptr(table.name) }
                .to_string_lossy()
                .into_owned()
        };
        if table.abi_version != IG_PLUGIN_ABI_VERSION {
            return Err(fail(
                &name,
                format_args!(
                    "plugin ABI version {}, this host speaks {IG_PLUGIN_ABI_VERSION}",
                    table.abi_version
                ),
            ));
        }
        for (what, present) in [
            ("create", table.create.is_some()),
            ("destroy", table.destroy.is_some()),
            ("apply", table.apply.is_some()),
        ] {
            if !present {
                return Err(fail(&name, format_args!("the required `{what}` is NULL")));
            }
        }
        Ok(Plugin {
            inner: Arc::new(Loaded {
                table,
                name,
                _lib: lib,
            }),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// An instance for a vocabulary of `vocab` tokens, configured by `config_json` (None = the
    /// plugin's defaults). It keeps the library loaded.
    pub fn instance(&self, config_json: Option<&str>, vocab: usize) -> Result<PluginProcessor> {
        let l = &self.inner;
        let config = config_json
            .map(CString::new)
            .transpose()
            .map_err(|_| fail(&l.name, "the configuration contains a NUL byte"))?;
        let mut err = [0 as c_char; ERR_CAP];
        let create = l.table.create.expect("checked at load");
        // SAFETY: the plugin contract: a NUL-terminated (or NULL) configuration and an error
        // buffer of ERR_CAP bytes.
        let instance = unsafe {
            create(
                config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                vocab,
                err.as_mut_ptr(),
                ERR_CAP,
            )
        };
        if instance.is_null() {
            return Err(fail(
                &l.name,
                format_args!("create failed: {}", message(&err)),
            ));
        }
        Ok(PluginProcessor {
            plugin: self.clone(),
            instance,
            vocab,
        })
    }
}

/// The NUL-terminated message a plugin left in an error buffer.
fn message(err: &[c_char; ERR_CAP]) -> String {
    let bytes: Vec<u8> = err
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    if bytes.is_empty() {
        "(no message)".into()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// One plugin instance, as a host logits processor.
pub struct PluginProcessor {
    plugin: Plugin,
    instance: *mut c_void,
    vocab: usize,
}

// SAFETY: the plugin contract lets an instance be used from any thread, one call at a time;
// `&mut self` on every call keeps them one at a time.
unsafe impl Send for PluginProcessor {}

impl PluginProcessor {
    fn table(&self) -> &IgPluginV1 {
        &self.plugin.inner.table
    }
    fn name(&self) -> &str {
        &self.plugin.inner.name
    }
}

impl LogitsProcessor for PluginProcessor {
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()> {
        if logits.len() != self.vocab {
            return Err(fail(
                self.name(),
                format_args!("row of {} logits, created for {}", logits.len(), self.vocab),
            ));
        }
        let mut err = [0 as c_char; ERR_CAP];
        let apply = self.table().apply.expect("checked at load");
        // SAFETY: a live instance; the row holds `len` writable floats; the error buffer
        // ERR_CAP bytes.
        let rc = unsafe {
            apply(
                self.instance,
                seq,
                logits.as_mut_ptr(),
                logits.len(),
                err.as_mut_ptr(),
                ERR_CAP,
            )
        };
        if rc != 0 {
            return Err(fail(
                self.name(),
                format_args!("apply failed ({rc}): {}", message(&err)),
            ));
        }
        if let Some(i) = logits
            .iter()
            .position(|z| z.is_nan() || *z == f32::INFINITY)
        {
            return Err(fail(
                self.name(),
                format_args!("apply wrote {} at token {i}", logits[i]),
            ));
        }
        Ok(())
    }

    fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        if let Some(accept) = self.table().accept {
            // SAFETY: a live instance.
            let rc = unsafe { accept(self.instance, seq, token) };
            if rc != 0 {
                return Err(fail(self.name(), format_args!("accept failed ({rc})")));
            }
        }
        Ok(())
    }

    fn begin(&mut self, seq: u64, context: &[u32]) {
        if let Some(begin) = self.table().begin {
            // SAFETY: a live instance; `context` holds `len` tokens.
            unsafe { begin(self.instance, seq, context.as_ptr(), context.len()) };
        }
    }

    fn reset(&mut self, seq: u64) {
        if let Some(end) = self.table().end {
            // SAFETY: a live instance.
            unsafe { end(self.instance, seq) };
        }
    }
}

impl Drop for PluginProcessor {
    fn drop(&mut self) {
        let destroy = self.table().destroy.expect("checked at load");
        // SAFETY: the instance came from `create` and is destroyed once; the library is still
        // loaded (this processor holds it).
        unsafe { destroy(self.instance) };
    }
}

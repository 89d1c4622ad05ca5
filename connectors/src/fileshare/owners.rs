//! File owners (uids) as user names: numeric uids resolved through the system's user database
//! (`getpwuid_r`, so NSS sources such as LDAP or sssd on a file server count too),
//! cached per uid. Unknown uids are shown as `uid:N`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex};

/// Resolves and caches uid → user name.
#[derive(Debug, Default)]
pub(crate) struct OwnerNames {
    cache: Mutex<HashMap<u32, Arc<str>>>,
}

impl OwnerNames {
    /// The user name for `uid`.
    pub(crate) fn name(&self, uid: u32) -> Arc<str> {
        if let Ok(cache) = self.cache.lock()
            && let Some(name) = cache.get(&uid)
        {
            return name.clone();
        }
        let name: Arc<str> = lookup(uid).unwrap_or_else(|| format!("uid:{uid}")).into();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(uid, name.clone());
        }
        name
    }
}

/// The name of the user this process runs as (its effective uid), from the
/// system's user database; `None` when it has none.
pub fn service_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    lookup(unsafe { libc::geteuid() })
}

fn lookup(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: `passwd` is plain data written by getpwuid_r; `buffer` outlives
        // every use of the pointers getpwuid_r stores into `passwd`, and its length
        // is passed alongside it.
        let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = unsafe {
            libc::getpwuid_r(
                uid,
                &mut passwd,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if status == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if status != 0 || result.is_null() || passwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in `buffer`.
        let name = unsafe { CStr::from_ptr(passwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_falls_back_to_numbers() {
        let owners = OwnerNames::default();
        assert_eq!(&*owners.name(0), "root");
        assert_eq!(&*owners.name(3_999_999_999), "uid:3999999999");
    }
}

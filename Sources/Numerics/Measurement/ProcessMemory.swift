import Foundation

/// The resident memory of this process as Linux reports it in `/proc/self/status`, for benchmarks.
///
/// `VmHWM` (the peak) is a process-wide high-water mark: one measurement's figure would include every
/// earlier measurement of the same process. `resetPeak()` sets it back to the current resident size
/// (Linux ≥ 4.0: writing "5" to `/proc/self/clear_refs`), so a peak read after a measurement covers that
/// measurement only, on top of what the process already held when it started (`currentRSSMiB()` then).
public enum ProcessMemory {
    /// Peak resident set size in MiB (`VmHWM`; 0 where unavailable).
    public static func peakRSSMiB() -> Double { statusField("VmHWM:") }

    /// Current resident set size in MiB (`VmRSS`; 0 where unavailable).
    public static func currentRSSMiB() -> Double { statusField("VmRSS:") }

    /// Returns freed heap memory to the system (glibc `malloc_trim`), then sets the peak back to the current
    /// resident size; false when the kernel does not allow the reset (then the peak keeps covering the whole
    /// life of the process).
    @discardableResult
    public static func resetPeak() -> Bool {
        trimHeap()
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }

    /// glibc's `malloc_trim(0)`, looked up at run time (Swift's Glibc module does not export malloc.h); nothing
    /// where the C library has no such function.
    private static func trimHeap() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// The kilobyte figure of a `/proc/self/status` line, in MiB.
    private static func statusField(_ key: String) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix(key) {
            let kb = line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }.first ?? 0
            return kb / 1024
        }
        return 0
    }

    /// The 1-minute load average (`/proc/loadavg`), to quote beside timings on shared machines; nil where unavailable.
    public static func loadAverage() -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return s.split(separator: " ").first.flatMap { Double($0) }
    }
}

import Foundation
import XCTest
@testable import Core
@testable import Results

final class NetCDFTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-netcdf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Runs `body` and returns the NetCDFError it throws (failing the test if it does not).
    private func netCDFError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> NetCDFError? {
        do {
            try body()
            XCTFail("expected a NetCDFError", file: file, line: line)
        } catch let error as NetCDFError {
            return error
        } catch {
            XCTFail("expected a NetCDFError, got \(error)", file: file, line: line)
        }
        return nil
    }

    func testLibraryVersion() {
        XCTAssertTrue(NetCDF.libraryVersion.hasPrefix("4."), NetCDF.libraryVersion)
    }

    func testRoundTripEveryNumericType() throws {
        let p = path("types.nc")
        let floats: [Float] = [1.5, -2.25, .greatestFiniteMagnitude, 0, 3e-38, 7]
        let doubles: [Double] = [.pi, -1e300, 0, 2, 1e-300, -0.5]
        let ints: [Int32] = [.min, .max, 0, -1, 1, 42]
        let longs: [Int64] = [.min, .max, 0, -1, 1 << 40, 42]
        let bytes: [Int8] = [.min, .max, 0, -1, 1, 42]
        let plain: [Int] = [1, 2, 3, 4, 5, 1 << 50]
        do {
            let f = try NetCDFFile.create(path: p)
            try f.addDimension("x", length: 2)
            try f.addDimension("y", length: 3)
            try f.addVariable("f", type: .float, dimensions: ["x", "y"])
            try f.addVariable("d", type: .double, dimensions: ["x", "y"])
            try f.addVariable("i", type: .int32, dimensions: ["x", "y"])
            try f.addVariable("l", type: .int64, dimensions: ["x", "y"])
            try f.addVariable("b", type: .int8, dimensions: ["x", "y"])
            try f.addVariable("n", type: Int.netCDFType, dimensions: ["x", "y"])
            try f.addVariable("scalar", type: .double, dimensions: [])
            try f.write(floats, to: "f")
            try f.write(doubles, to: "d")
            try f.write(ints, to: "i")
            try f.write(longs, to: "l")
            try f.write(bytes, to: "b")
            try f.write(plain, to: "n")
            try f.write([2.5], to: "scalar")
            try f.close()
            try f.close()   // idempotent
        }
        let f = try NetCDFFile.open(path: p)
        XCTAssertEqual(try f.read("f", as: Float.self), floats)
        XCTAssertEqual(try f.read("d", as: Double.self), doubles)
        XCTAssertEqual(try f.read("i", as: Int32.self), ints)
        XCTAssertEqual(try f.read("l", as: Int64.self), longs)
        XCTAssertEqual(try f.read("b", as: Int8.self), bytes)
        XCTAssertEqual(try f.read("n", as: Int.self), plain)
        XCTAssertEqual(try f.read("scalar", as: Double.self), [2.5])
        XCTAssertEqual(try f.variableNames(), ["f", "d", "i", "l", "b", "n", "scalar"])
        XCTAssertEqual(try ["f", "d", "i", "l", "b", "n"].map { try f.variable($0).type },
                       [.float, .double, .int32, .int64, .int8, .int64])
        let info = try f.variable("d")
        XCTAssertEqual(info.dimensions, ["x", "y"])
        XCTAssertEqual(info.shape, [2, 3])
        XCTAssertEqual(try f.variable("scalar").shape, [])
        XCTAssertEqual(try f.dimensions(), [NetCDFDimension(name: "x", length: 2, isUnlimited: false),
                                            NetCDFDimension(name: "y", length: 3, isUnlimited: false)])
        // Reading into a caller buffer, with library conversion int → double.
        var buffer = [Double](repeating: 0, count: 3)
        try buffer.withUnsafeMutableBufferPointer { try f.read("i", into: $0, start: [1, 0], count: [1, 3]) }
        XCTAssertEqual(buffer, [-1, 1, 42])
    }

    func testStringVariables() throws {
        let p = path("strings.nc")
        let labels = ["city", "Zürich — 東京", "", "a much longer label with spaces"]
        do {
            let f = try NetCDFFile.create(path: p)
            try f.addDimension("task", length: 4)
            try f.addDimension("pair", length: 2)
            try f.addVariable("task", type: .string, dimensions: ["task"])
            try f.addVariable("grid", type: .string, dimensions: ["task", "pair"])
            try f.write(labels, to: "task")
            try f.write(["x", "y"], to: "grid", start: [2, 0], count: [1, 2])
            try f.close()
        }
        let f = try NetCDFFile.open(path: p)
        XCTAssertEqual(try f.variable("task").type, .string)
        XCTAssertEqual(try f.readStrings("task"), labels)
        XCTAssertEqual(try f.readStrings("task", start: [1], count: [2]), Array(labels[1...2]))
        XCTAssertEqual(try f.readStrings("grid"), ["", "", "", "", "x", "y", "", ""])
    }

    func testGlobalAndVariableAttributes() throws {
        let p = path("attributes.nc")
        do {
            let f = try NetCDFFile.create(path: p)
            try f.setAttribute("title", "knowledge circuits")
            try f.setAttribute("mpi_ranks", Int32(3))
            try f.setAttribute("created", "2026-11-27T12:00:00Z")
            try f.setAttribute("window", [0.25, 0.5, 1.0])
            try f.setStringsAttribute("commands", ["dkc train", "dkc sweep"])
            try f.addDimension("x", length: 2)
            try f.addVariable("score", type: .float, dimensions: ["x"])
            try f.setAttribute("long_name", "edge score", on: "score")
            try f.setAttribute("units", .text("1"), on: "score")
            try f.setAttribute("ig_steps", 5, on: "score")
            try f.setAttribute("valid_range", [Float(-1), 1], on: "score")
            try f.setAttribute("flag", Int8(1), on: "score")
            try f.write([Float(1), 2], to: "score")      // data mode ...
            try f.setAttribute("history", "line 1", on: nil)  // ... and back to define mode
            try f.setAttribute("history", "line 1\nline 2")   // replaced
            try f.close()
        }
        let f = try NetCDFFile.open(path: p)
        XCTAssertEqual(try f.attributeNames(), ["title", "mpi_ranks", "created", "window", "commands", "history"])
        XCTAssertEqual(try f.attribute("title"), .text("knowledge circuits"))
        XCTAssertEqual(try f.attribute("mpi_ranks"), .int32([3]))
        XCTAssertEqual(try f.attribute("window"), .double([0.25, 0.5, 1.0]))
        XCTAssertEqual(try f.attribute("commands"), .strings(["dkc train", "dkc sweep"]))
        XCTAssertEqual(try f.textAttribute("history"), "line 1\nline 2")
        XCTAssertEqual(try f.attributeNames(of: "score"), ["long_name", "units", "ig_steps", "valid_range", "flag"])
        XCTAssertEqual(try f.textAttribute("long_name", of: "score"), "edge score")
        XCTAssertEqual(try f.attribute("units", of: "score"), .text("1"))
        XCTAssertEqual(try f.attribute("ig_steps", of: "score"), .int64([5]))
        XCTAssertEqual(try f.attribute("valid_range", of: "score"), .float([-1, 1]))
        XCTAssertEqual(try f.attribute("flag", of: "score"), .int8([1]))
        XCTAssertEqual(try f.numericAttribute("ig_steps", of: "score", as: Double.self), [5])
        XCTAssertTrue(f.hasAttribute("units", of: "score"))
        XCTAssertFalse(f.hasAttribute("units"))
        XCTAssertFalse(f.hasAttribute("units", of: "nope"))
        let missing = netCDFError { _ = try f.attribute("nope", of: "score") }
        XCTAssertTrue(missing?.description.contains("attribute 'nope' of variable 'score'") ?? false, "\(String(describing: missing))")
        XCTAssertNotNil(netCDFError { _ = try f.textAttribute("mpi_ranks") })
    }

    func testFillValues() throws {
        let p = path("fill.nc")
        do {
            let f = try NetCDFFile.create(path: p)
            try f.addDimension("cell", length: 5)
            try f.addVariable("score", type: .float, dimensions: ["cell"], fill: .nan)
            try f.addVariable("seconds", type: .double, dimensions: ["cell"], fill: .nan)
            try f.addVariable("count", type: .int32, dimensions: ["cell"], fill: .value(-1))
            try f.addVariable("plain", type: .float, dimensions: ["cell"])
            XCTAssertNotNil(netCDFError { try f.addVariable("bad1", type: .int32, dimensions: ["cell"], fill: .nan) })
            XCTAssertNotNil(netCDFError { try f.addVariable("bad2", type: .int8, dimensions: ["cell"], fill: .value(0.5)) })
            XCTAssertNotNil(netCDFError { try f.addVariable("bad3", type: .int8, dimensions: ["cell"], fill: .value(300)) })
            try f.write([Float(1), 2], to: "score", start: [1], count: [2])
            try f.write([7.0], to: "seconds", start: [4], count: [1])
            try f.write([Int32(9)], to: "count", start: [0], count: [1])
            try f.close()
        }
        let f = try NetCDFFile.open(path: p)
        let score = try f.read("score", as: Float.self)
        XCTAssertEqual(score.map(\.isNaN), [true, false, false, true, true])
        XCTAssertEqual(score[1...2], [1, 2])
        XCTAssertEqual(try f.read("seconds", as: Double.self).map(\.isNaN), [true, true, true, true, false])
        XCTAssertEqual(try f.read("count", as: Int32.self), [9, -1, -1, -1, -1])
        guard case .float(let fill) = try f.attribute("_FillValue", of: "score") else {
            return XCTFail("_FillValue of score is not a float")
        }
        XCTAssertTrue(fill.count == 1 && fill[0].isNaN)
        XCTAssertFalse(f.hasAttribute("_FillValue", of: "plain"))
        XCTAssertEqual(try f.read("plain", as: Float.self).first, 9.96921e36)   // library default NC_FILL_FLOAT
    }

    func testCompressedChunkedVariables() throws {
        let p = path("compressed.nc")
        let (a, b, c) = (3, 4, 50)
        let values = (0..<(a * b * c)).map { Float($0 % 7) * 0.5 }
        do {
            let f = try NetCDFFile.create(path: p)
            try f.addDimension("task", length: a)
            try f.addDimension("upstream", length: b)
            try f.addDimension("downstream", length: c)
            try f.addVariable("score", type: .float, dimensions: ["task", "upstream", "downstream"],
                              compression: NetCDFCompression(level: 4, shuffle: true), chunkSizes: [1, b, c], fill: .nan)
            try f.addVariable("mask", type: .int8, dimensions: ["upstream", "downstream"],
                              compression: NetCDFCompression(level: 1, shuffle: false))
            try f.addVariable("raw", type: .double, dimensions: ["upstream"])
            XCTAssertNotNil(netCDFError {
                try f.addVariable("bad", type: .float, dimensions: ["task"], compression: NetCDFCompression(level: 12))
            })
            XCTAssertNotNil(netCDFError { try f.addVariable("bad", type: .float, dimensions: ["task"], chunkSizes: [1, 2]) })
            try f.write(values, to: "score")
            try f.close()
        }
        let f = try NetCDFFile.open(path: p)
        let score = try f.variable("score")
        XCTAssertEqual(score.compression, NetCDFCompression(level: 4, shuffle: true))
        XCTAssertEqual(score.chunkSizes, [1, b, c])
        let mask = try f.variable("mask")
        XCTAssertEqual(mask.compression, NetCDFCompression(level: 1, shuffle: false))
        XCTAssertNotNil(mask.chunkSizes)   // deflate implies chunking
        let raw = try f.variable("raw")
        XCTAssertNil(raw.compression)
        XCTAssertNil(raw.chunkSizes)
        XCTAssertEqual(try f.read("score", as: Float.self), values)
        XCTAssertEqual(try f.read("score", as: Float.self, start: [2, 1, 10], count: [1, 1, 3]),
                       Array(values[(2 * b + 1) * c + 10 ..< (2 * b + 1) * c + 13]))
    }

    func testUnlimitedDimensionGrows() throws {
        let p = path("unlimited.nc")
        do {
            let f = try NetCDFFile.create(path: p)
            let time = try f.addDimension("checkpoint", length: nil)
            XCTAssertTrue(time.isUnlimited)
            try f.addDimension("task", length: 2)
            try f.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
            try f.addVariable("value", type: .float, dimensions: ["checkpoint", "task"], fill: .nan)
            XCTAssertEqual(try f.dimension("checkpoint").length, 0)
            try f.write([Int64(100)], to: "checkpoint")
            try f.write([Float(1), 2], to: "value")                                  // one record
            XCTAssertEqual(try f.dimension("checkpoint").length, 1)
            try f.write([Float(3), 4, 5, 6], to: "value", start: [1, 0])             // two more, count inferred
            try f.write([Int64(200), 300], to: "checkpoint", start: [1])
            XCTAssertNotNil(netCDFError { try f.write([Float(1), 2, 3], to: "value", start: [3, 0]) })   // not whole records
            try f.write([Float(9)], to: "value", start: [4, 1], count: [1, 1])       // leaves a gap
            try f.close()
        }
        let f = try NetCDFFile.open(path: p)
        XCTAssertEqual(try f.dimension("checkpoint"), NetCDFDimension(name: "checkpoint", length: 5, isUnlimited: true))
        let value = try f.read("value", as: Float.self)
        XCTAssertEqual(Array(value[0..<6]), [1, 2, 3, 4, 5, 6])
        XCTAssertTrue(value[6].isNaN && value[7].isNaN && value[8].isNaN)
        XCTAssertEqual(value[9], 9)
        XCTAssertEqual(try f.read("checkpoint", as: Int64.self).prefix(3), [100, 200, 300])
    }

    func testSliceWrites() throws {
        let p = path("slices.nc")
        let f = try NetCDFFile.create(path: p)
        try f.addDimension("a", length: 2)
        try f.addDimension("b", length: 3)
        try f.addDimension("c", length: 4)
        try f.addVariable("v", type: .double, dimensions: ["a", "b", "c"], fill: .value(-1))
        try f.write([1, 2, 3, 4], to: "v", start: [1, 2, 0], count: [1, 1, 4])       // one row
        try f.write([5, 6, 7], to: "v", start: [0, 0, 3], count: [1, 3, 1])          // one column
        XCTAssertEqual(try f.read("v", as: Double.self, start: [1, 2, 0], count: [1, 1, 4]), [1, 2, 3, 4])
        XCTAssertEqual(try f.read("v", as: Double.self, start: [0, 0, 2], count: [1, 3, 2]), [-1, 5, -1, 6, -1, 7])
        XCTAssertEqual(try f.read("v", as: Double.self, start: [1, 1, 2]), [-1, -1, 3, 4])   // count: to the end
        let all = try f.read("v", as: Double.self)
        XCTAssertEqual(all.count, 24)
        XCTAssertEqual(all.filter { $0 != -1 }.count, 7)
        let mismatch = netCDFError { try f.write([1, 2], to: "v", start: [0, 0, 0], count: [1, 1, 3]) }
        XCTAssertTrue(mismatch?.description.contains("2 values given for count [1, 1, 3]") ?? false, "\(String(describing: mismatch))")
        let rank = netCDFError { try f.write([1], to: "v", start: [0, 0]) }
        XCTAssertTrue(rank?.description.contains("3 dimensions") ?? false, "\(String(describing: rank))")
        let outside = netCDFError { try f.write([1, 2], to: "v", start: [0, 0, 3], count: [1, 1, 2]) }
        XCTAssertEqual(outside?.code, -57)   // NC_EEDGE: start + count exceeds the dimension
        try f.close()
    }

    func testErrorsNameTheCallFileAndObject() throws {
        let missing = path("does-not-exist.nc")
        let open = netCDFError { _ = try NetCDFFile.open(path: missing) }
        XCTAssertEqual(open?.call, "nc_open")
        XCTAssertEqual(open?.exitCode, 65)
        XCTAssertTrue(open?.description.contains(missing) ?? false, "\(String(describing: open))")
        XCTAssertTrue(open?.description.contains("No such file") ?? false, "\(String(describing: open))")

        let p = path("errors.nc")
        let f = try NetCDFFile.create(path: p)
        try f.addDimension("x", length: 2)
        try f.addVariable("score", type: .float, dimensions: ["x"])
        let wrong = netCDFError { _ = try f.read("scroe", as: Float.self) }
        XCTAssertEqual(wrong?.call, "nc_inq_varid")
        XCTAssertTrue(wrong?.description.contains("variable 'scroe'") ?? false, "\(String(describing: wrong))")
        XCTAssertTrue(wrong?.description.contains("[score]") ?? false, "lists the known variables: \(String(describing: wrong))")
        XCTAssertTrue(wrong?.description.contains(p) ?? false)
        XCTAssertTrue(wrong?.description.contains("Variable not found") ?? false, "nc_strerror text: \(String(describing: wrong))")
        let dim = netCDFError { try f.addVariable("y", type: .float, dimensions: ["z"]) }
        XCTAssertTrue(dim?.description.contains("dimension 'z'") ?? false, "\(String(describing: dim))")
        let duplicate = netCDFError { try f.addVariable("score", type: .double, dimensions: []) }
        XCTAssertEqual(duplicate?.call, "nc_def_var")
        XCTAssertNotNil(netCDFError { try f.write(["text"], to: "score") })   // string into a float variable
        let range = netCDFError { try f.write([1e300, 1], to: "score") }   // does not fit a float
        XCTAssertEqual(range?.code, -60)   // NC_ERANGE
        try f.close()
        XCTAssertFalse(f.isOpen)
        let closed = netCDFError { _ = try f.variableNames() }
        XCTAssertTrue(closed?.description.contains("closed") ?? false)

        let readOnly = try NetCDFFile.open(path: p)
        let denied = netCDFError { try readOnly.write([Float(1), 2], to: "score") }
        XCTAssertTrue(denied?.description.contains("nc_put_vara") ?? false, "\(String(describing: denied))")
        XCTAssertTrue(denied?.description.contains("variable 'score'") ?? false)
        XCTAssertNotNil(netCDFError { try readOnly.setAttribute("units", "1", on: "score") })
    }

    func testAtomicWriteLeavesNoTemporaryFile() throws {
        let target = folder.appendingPathComponent("scores.nc")
        let temporary = NetCDFFile.temporaryURL(for: target)
        XCTAssertEqual(temporary.lastPathComponent, "scores.nc.tmp-\(getpid())")
        let manager = FileManager.default

        let result = try NetCDFFile.writeAtomically(to: target) { f -> Int in
            XCTAssertFalse(manager.fileExists(atPath: target.path), "the target must not appear before the write ends")
            XCTAssertTrue(manager.fileExists(atPath: temporary.path))
            try f.addDimension("x", length: 3)
            try f.addVariable("v", type: .float, dimensions: ["x"])
            try f.write([Float(1), 2, 3], to: "v")
            try f.setAttribute("history", "first")
            return 7
        }
        XCTAssertEqual(result, 7)
        XCTAssertFalse(manager.fileExists(atPath: temporary.path))
        XCTAssertEqual(try manager.contentsOfDirectory(atPath: folder.path), ["scores.nc"])
        do {
            let f = try NetCDFFile.open(path: target.path)
            XCTAssertEqual(try f.read("v", as: Float.self), [1, 2, 3])
        }

        // A failing body: the temporary file goes, the previous target stays untouched.
        struct Interrupted: Error {}
        let before = try Data(contentsOf: target)
        XCTAssertThrowsError(try NetCDFFile.writeAtomically(to: target) { f in
            try f.addDimension("y", length: 1)
            throw Interrupted()
        }) { XCTAssertTrue($0 is Interrupted) }
        XCTAssertFalse(manager.fileExists(atPath: temporary.path))
        XCTAssertEqual(try Data(contentsOf: target), before)

        // A NetCDF failure inside the body propagates as NetCDFError and also cleans up.
        XCTAssertThrowsError(try NetCDFFile.writeAtomically(to: target) { try $0.write([Float(1)], to: "missing") }) {
            XCTAssertTrue($0 is NetCDFError)
        }
        XCTAssertFalse(manager.fileExists(atPath: temporary.path))

        // Updating: starts from a copy of the target; the target changes only at the end.
        try NetCDFFile.writeAtomically(to: target, updatingExisting: true) { f in
            XCTAssertEqual(try f.read("v", as: Float.self), [1, 2, 3])
            try f.setAttribute("history", try f.textAttribute("history") + "\nsecond")
            try f.write([Float(9)], to: "v", start: [2], count: [1])
            let untouched = try NetCDFFile.open(path: target.path)
            XCTAssertEqual(try untouched.read("v", as: Float.self), [1, 2, 3])
            try untouched.close()
        }
        let f = try NetCDFFile.open(path: target.path)
        XCTAssertEqual(try f.read("v", as: Float.self), [1, 2, 9])
        XCTAssertEqual(try f.textAttribute("history"), "first\nsecond")
        XCTAssertEqual(try manager.contentsOfDirectory(atPath: folder.path), ["scores.nc"])
    }

    func testNcdumpReadsTheFile() throws {
        let ncdump = "/usr/bin/ncdump"
        guard FileManager.default.isExecutableFile(atPath: ncdump) else {
            throw XCTSkip("ncdump not found at \(ncdump): install netcdf-bin to run this test")
        }
        let target = folder.appendingPathComponent("dump.nc")
        try NetCDFFile.writeAtomically(to: target) { f in
            try f.setAttribute("title", "dkc scores")
            try f.setAttribute("mpi_ranks", Int32(2))
            try f.addDimension("checkpoint", length: nil)
            try f.addDimension("task", length: 2)
            try f.addDimension("upstream", length: 3)
            try f.addVariable("task", type: .string, dimensions: ["task"])
            try f.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
            try f.addVariable("score", type: .float, dimensions: ["checkpoint", "task", "upstream"],
                              compression: NetCDFCompression(level: 2, shuffle: true), chunkSizes: [1, 1, 3], fill: .nan)
            try f.setAttribute("long_name", "edge attribution score", on: "score")
            try f.setAttribute("units", "1", on: "score")
            try f.write(["city", "major"], to: "task")
            try f.write([Int64(500)], to: "checkpoint")
            try f.write([Float](repeating: 0.5, count: 6), to: "score")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ncdump)
        process.arguments = ["-hs", target.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        for expected in [
            "checkpoint = UNLIMITED ; // (1 currently)",
            "task = 2 ;",
            "upstream = 3 ;",
            "string task(task) ;",
            "int64 checkpoint(checkpoint) ;",
            "float score(checkpoint, task, upstream) ;",
            "score:_FillValue = NaNf ;",
            "score:long_name = \"edge attribution score\" ;",
            "score:units = \"1\" ;",
            "score:_ChunkSizes = 1, 1, 3 ;",
            "score:_DeflateLevel = 2 ;",
            "score:_Shuffle = \"true\" ;",
            ":title = \"dkc scores\" ;",
            ":mpi_ranks = 2 ;",
            ":_Format = \"netCDF-4\" ;",
        ] {
            XCTAssertTrue(output.contains(expected), "ncdump -hs lacks '\(expected)':\n\(output)")
        }
    }

    /// NetCDF-C 4.9.0 lets HDF5 print "HDF5-DIAG" blocks on stderr when a file is opened on a
    /// thread other than the one that initialised the library; the wrapper silences them.
    func testNoHDF5DiagnosticsOnOtherThreads() throws {
        let p = path("quiet.nc")
        let f = try NetCDFFile.create(path: p)
        try f.addDimension("x", length: 2)
        try f.addVariable("v", type: .float, dimensions: ["x"])
        try f.close()

        let log = path("stderr.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: log, contents: nil))
        let saved = dup(2)
        let sink = Foundation.open(log, O_WRONLY)
        dup2(sink, 2)
        final class Result: @unchecked Sendable { var values: [Float] = [] }   // written before `done` signals
        let result = Result()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            result.values = (try? NetCDFFile.open(path: p).read("v", as: Float.self)) ?? []
            done.signal()
        }
        thread.start()
        done.wait()
        dup2(saved, 2)
        Foundation.close(sink)
        Foundation.close(saved)
        XCTAssertEqual(result.values.count, 2)
        let written = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertFalse(written.contains("HDF5-DIAG"), written)
    }

    func testConcurrentUseIsSerialised() throws {
        let count = 8
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: count) { i in
            do {
                let p = self.path("thread-\(i).nc")
                let values = (0..<1000).map { Float($0 + i) }
                let f = try NetCDFFile.create(path: p)
                try f.addDimension("x", length: values.count)
                try f.addVariable("v", type: .float, dimensions: ["x"], compression: NetCDFCompression(), fill: .nan)
                try f.setAttribute("thread", Int32(i), on: "v")
                try f.write(values, to: "v")
                try f.close()
                let g = try NetCDFFile.open(path: p)
                if try g.read("v", as: Float.self) != values || g.attribute("thread", of: "v") != .int32([Int32(i)]) {
                    throw NetCDFError(call: "test", path: p, reason: "values differ after the round trip")
                }
            } catch {
                failures.lock(); errors.append("\(error)"); failures.unlock()
            }
        }
        XCTAssertEqual(errors, [])
    }
}

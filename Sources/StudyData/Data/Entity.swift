import Foundation
import Support

/// "new": a fictional person the model meets only in the continual corpus; "revised": a person
/// the model is assumed to know already, whose attributes the continual corpus changes.
public enum EntityType: String, CaseIterable, Sendable {
    case new, revised
}

/// One knowledge entity with the study's seven attributes and its corpus frequency.
/// JSON field names and order are the study's (`full_name, birth_date, birth_month, birth_year,
/// city, major, university, company, birthday, frequency, type`), frequency written as a string.
public struct Entity: Equatable, Sendable {
    public var fullName: String
    /// Day of month as written in the birthday ("17").
    public var birthDate: String
    public var birthMonth: String
    public var birthYear: String
    public var city: String
    public var major: String
    public var university: String
    public var company: String
    /// How many biographies of this entity the corpus holds (≥ 1).
    public var frequency: Int
    public var type: EntityType

    public init(fullName: String, birthDate: String, birthMonth: String, birthYear: String, city: String,
                major: String, university: String, company: String, frequency: Int, type: EntityType) {
        self.fullName = fullName
        self.birthDate = birthDate
        self.birthMonth = birthMonth
        self.birthYear = birthYear
        self.city = city
        self.major = major
        self.university = university
        self.company = company
        self.frequency = frequency
        self.type = type
    }

    /// "{day} {Month}, {year}", e.g. "2 April, 1904".
    public var birthday: String { "\(birthDate) \(birthMonth), \(birthYear)" }

    /// The value an attribute group's sentence states (and a circuit task asks for).
    public func value(of group: AttributeGroup) -> String {
        switch group {
        case .birthday: return birthday
        case .city: return city
        case .company: return company
        case .major: return major
        case .university: return university
        }
    }

    public func value(of task: CircuitTask) -> String { value(of: AttributeGroup(rawValue: task.rawValue)!) }

    /// The study's fields in the study's order, as (name, value) string pairs.
    public var fields: [(String, String)] {
        [("full_name", fullName), ("birth_date", birthDate), ("birth_month", birthMonth), ("birth_year", birthYear),
         ("city", city), ("major", major), ("university", university), ("company", company),
         ("birthday", birthday), ("frequency", String(frequency)), ("type", type.rawValue)]
    }

    /// Appends the fields as JSON members, each preceded by ", " when `leadingSeparator` (so they
    /// can follow a "text" member) — without braces; `extra` members (string values) follow the
    /// study's fields (`origin`, `cpt_frequency` of the forgetting sets).
    public func appendJSONFields(to out: inout [UInt8], leadingSeparator: Bool, extra: [(String, String)] = []) {
        for (i, (key, value)) in (fields + extra).enumerated() {
            if i > 0 || leadingSeparator { out.append(0x2C); out.append(0x20) }
            JSONText.appendString(key, to: &out)
            out.append(0x3A); out.append(0x20)
            JSONText.appendString(value, to: &out)
        }
    }

    /// One line of `new.jsonl` / `revised.jsonl` / `test.jsonl`, with its newline.
    public func appendJSONLine(to out: inout [UInt8], extra: [(String, String)] = []) {
        out.append(0x7B)
        appendJSONFields(to: &out, leadingSeparator: false, extra: extra)
        out.append(0x7D); out.append(0x0A)
    }

    /// Reads an entity from a decoded JSON object of the study's form; `frequency` may be a string
    /// (as the study writes it) or an integer. Returns nil when a field is missing or malformed.
    public init?(jsonObject o: JSONValue) {
        func s(_ k: String) -> String? { o[k]?.stringValue }
        guard let name = s("full_name"), let date = s("birth_date"), let month = s("birth_month"), let year = s("birth_year"),
              let city = s("city"), let major = s("major"), let university = s("university"), let company = s("company"),
              let typeName = s("type"), let type = EntityType(rawValue: typeName) else { return nil }
        let frequency: Int
        if let f = o["frequency"]?.stringValue, let v = Int(f) {
            frequency = v
        } else if case .int(let n)? = o["frequency"] {
            frequency = n
        } else {
            return nil
        }
        self.init(fullName: name, birthDate: date, birthMonth: month, birthYear: year, city: city, major: major,
                  university: university, company: company, frequency: frequency, type: type)
    }
}

/// The entities of one generated world.
public struct EntityWorld {
    /// New entities, in ascending frequency (the order of `new.jsonl`).
    public var new: [Entity]
    /// Revised entities with the attributes the continual corpus teaches (`revised.jsonl`).
    public var revised: [Entity]
    /// The same people as `revised`, same order and frequencies, with their original attributes
    /// (an independent draw): what the base corpus teaches.
    public var original: [Entity]

    public func entities(of type: EntityType) -> [Entity] { type == .new ? new : revised }
}

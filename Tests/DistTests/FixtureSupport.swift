import Foundation
import XCTest
import Core

/// The error a test throws when the reference fixtures are missing: a skip, or under CI (`CI=true`,
/// `Paths.fixtureSkipAllowed`) a failure, so a CI run never passes without its fixture tests.
func missingFixtures(_ where: String) -> Error {
    let text = "fixtures not found at \(`where`): set DKC_FIXTURES, or keep Tests/Fixtures (scripts/compact-fixtures remakes it)"
    return Paths.fixtureSkipAllowed ? XCTSkip(text) : MissingFixturesError(text: text + " (CI=true: a missing fixture fails the run)")
}

struct MissingFixturesError: Error, CustomStringConvertible { let text: String; var description: String { text } }

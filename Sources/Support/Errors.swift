/// An error whose text is meant for the person running dkc, with the exit code it should end with
/// (65 for bad input data or configuration, 1 otherwise).
public protocol UserFacingError: Error, CustomStringConvertible {
    var exitCode: Int32 { get }
}

public extension UserFacingError {
    var exitCode: Int32 { 65 }
}

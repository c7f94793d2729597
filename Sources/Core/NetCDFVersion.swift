import CNetCDF

public enum NetCDF {
    /// `nc_inq_libvers()`, e.g. "4.9.0 of Feb  8 2023 ...".
    public static var libraryVersion: String { String(cString: nc_inq_libvers()) }
}

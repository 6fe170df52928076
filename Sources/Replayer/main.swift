import Foundation
// parley-replay is built in issue [replay]; until then it says so and exits 2.
FileHandle.standardError.write(Data("parley-replay: not built yet (issue [replay])\n".utf8))
exit(2)

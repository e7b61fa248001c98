// The docs gate (npm run docs:check) with the repo's typedoc.json on a fixture shaped like the package's
// barrels (`export * as X from "./X.ts"`): TypeDoc must report an undocumented export inside a namespace,
// an undocumented member, and a module without an `@module` comment, and must not report what is documented.
import { readFileSync } from "node:fs"
import path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Application } from "typedoc"

const fixture = path.resolve("test/unit/fixtures/docs-gate")

const reportsOnFixture = async () => {
  // the fixture's typedoc.json extends the repo's, with the fixture's entry point and tsconfig
  const app = await Application.bootstrapWithPlugins({
    options: path.join(fixture, "typedoc.json"),
    emit: "none",
    logLevel: "None"
  })
  const reports: Array<string> = []
  app.logger.validationWarning = (text: string) => {
    reports.push(text)
  }
  const project = await app.convert()
  assert.isDefined(project)
  app.validate(project!)
  return reports.filter((r) => r.includes("does not have any documentation")).map((r) => r.split(",")[0])
}

describe("docs gate", { timeout: 60_000 }, () => {
  it("npm run docs:check turns TypeDoc's validation warnings into errors", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }
    assert.include(pkg.scripts["docs:check"], "--treatValidationWarningsAsErrors")
    assert.include(pkg.scripts.test, "npm run docs:check")
  })

  it("reports undocumented exports and members inside `export * as` namespaces, and modules without @module", async () => {
    const reports = await reportsOnFixture()
    assert.sameMembers(reports, [
      "Documented.Options.undocumentedField (Property)",
      "Documented.undocumentedConstant (Variable)",
      "Undocumented (Namespace)"
    ])
  })
})

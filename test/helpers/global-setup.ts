/** Says once, at the top of the run, whether the PostgreSQL contract run is on. */
export default function setup(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    throw new Error(`The tests need Node.js 22 or newer (package.json engines); this is ${process.version}.`);
  }
  console.log(`Node.js ${process.version}`);
  if (process.env.TEST_DATABASE_URL) {
    console.log(`PostgreSQL contract run: on (TEST_DATABASE_URL=${process.env.TEST_DATABASE_URL})`);
  } else {
    console.log('PostgreSQL contract run: SKIPPED, because TEST_DATABASE_URL is not set (.ci/run sets it).');
  }
}

export * from './runner.js'
export * from './command-runner.js'
export * from './message-sink.js'

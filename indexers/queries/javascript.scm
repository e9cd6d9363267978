(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (identifier) @name) @definition.class
(method_definition name: (_) @name) @definition.method
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression)])) @definition.function
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression)])) @definition.function
(expression_statement
  (assignment_expression
    left: (member_expression) @name
    right: [(arrow_function) (function_expression)])) @definition.function
(field_definition
  property: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.method
(expression_statement
  (assignment_expression
    left: (member_expression) @name
    right: (assignment_expression
      right: [(arrow_function)
              (function_expression)
              (assignment_expression right: [(arrow_function) (function_expression)])]))) @definition.function
(expression_statement
  (call_expression
    arguments: (arguments (function_expression name: (identifier) @name)))) @definition.function
(expression_statement
  (call_expression
    arguments: (arguments
      [(string) (template_string)] @name
      .
      [(arrow_function) (function_expression)]))) @definition.function
